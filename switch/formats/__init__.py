"""Sans-IO wire codecs, one module per network format (no Twisted imports here)."""

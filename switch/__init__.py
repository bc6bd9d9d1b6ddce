"""switch: a message-switch gateway for law-enforcement teletype and wants/warrants inquiries."""

__version__ = "0.1.0"

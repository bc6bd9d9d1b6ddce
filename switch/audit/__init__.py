"""The tamper-evident audit trail (DESIGN §7).

``interface`` is the seam every layer records through; ``log`` the durable
implementation on the store; ``chain`` the pure canonical-JSON / hash-chain / checkpoint
rules; ``verify`` the offline checker behind ``switchctl audit verify``.
"""

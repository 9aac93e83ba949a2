"""The one exception the protocol core raises for bad input from a peer.

Everything a client can send us ends in either a decoded value or a
``ProtocolError``; the I/O adapters catch this class only, so any other
exception escaping the core is a bug in the core, not in the client.
"""


class ProtocolError(ValueError):
    """Input that breaks the Engine.IO or Socket.IO wire format."""

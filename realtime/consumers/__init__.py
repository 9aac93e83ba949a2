"""ASGI adapters: the only code that reads scopes and ASGI messages."""

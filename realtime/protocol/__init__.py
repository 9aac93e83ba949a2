"""The sans-I/O core of realtime: Engine.IO and Socket.IO on the wire.

Standard library only, no clocks, no randomness, no asyncio: callers pass
the current time and the ids. See README.md in this folder.
"""

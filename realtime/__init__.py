"""realtime: a Socket.IO server for Django, on Django Channels.

The public API grows here; see README.md at the top of the project.
"""

default_app_config = "realtime.apps.RealtimeConfig"

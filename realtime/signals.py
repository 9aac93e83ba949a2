"""Django signals for the socket lifecycle, so any app can react without subclassing.

All are sent with ``asend`` from the server's event loop; receivers may be
sync (Django runs them in a thread) or async.
"""

from django.dispatch import Signal

# sender: the Namespace class; kwargs: socket
client_connected = Signal()
# sender: the Namespace class; kwargs: socket, reason
client_disconnected = Signal()
# sender: the Namespace class; kwargs: socket, room. Sent for a connected socket only (rooms joined
# in on_connect arrive with client_connected in socket.rooms); a disconnect sends room_left for each
# room the socket was in, before client_disconnected.
room_joined = Signal()
room_left = Signal()

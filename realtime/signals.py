"""Django signals for the socket lifecycle, so any app can react without subclassing.

Both are sent with ``asend`` from the server's event loop; receivers may be
sync (Django runs them in a thread) or async.
"""

from django.dispatch import Signal

# sender: the Namespace class; kwargs: socket
client_connected = Signal()
# sender: the Namespace class; kwargs: socket, reason
client_disconnected = Signal()

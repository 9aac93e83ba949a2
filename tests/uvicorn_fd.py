"""uvicorn on the listening socket a test hands it, as a TCP socket (tests/servers.py).

``uvicorn --fd N`` wraps any inherited descriptor as a Unix-domain socket
(``socket.fromfd(fd, AF_UNIX, ...)``, uvicorn 0.54), so asyncio never sets
TCP_NODELAY on the connections it accepts: Nagle's algorithm and the client's
delayed ACK then hold every second small write back 40 ms. Measured: polling
GETs on uvicorn alternated 44 ms and 4 ms apart, and a python-engineio client
echoing 1,000 messages timed out on a 400/300 ms heartbeat that daphne passed.
``socket.socket(fileno=N)`` reads the family from the descriptor (AF_INET), so
connections get TCP_NODELAY as they do when uvicorn binds a host and port itself.

    python -m tests.uvicorn_fd FD module:application
"""

import socket
import sys

import uvicorn


def main() -> None:
    fd, app = int(sys.argv[1]), sys.argv[2]
    listener = socket.socket(fileno=fd)
    # Django's ASGI app has no lifespan protocol; wsproto is the WebSocket implementation the tests run
    config = uvicorn.Config(app, lifespan="off", ws="wsproto")
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()

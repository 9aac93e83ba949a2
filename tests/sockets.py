"""Namespaces the end-to-end tests drive (registered by tests/settings.py)."""

import asyncio
import logging
import os
import re
import secrets

from django.dispatch import receiver

from realtime import AckTimeout, ConnectionRefused, EventRefused, LimitExceeded, Namespace, event, io, rate_limit
from realtime.signals import client_connected, client_disconnected

# socket id -> reason, as on_disconnect saw it; socket id -> (namespace, event) as the signals saw them
DISCONNECTS: dict[str, str] = {}
SIGNALS: dict[str, list[str]] = {}


@receiver(client_connected)
def _connected(sender, socket, **kwargs):
    SIGNALS.setdefault(socket.id, []).append(f"connected {socket.namespace}")


@receiver(client_disconnected)
async def _disconnected(sender, socket, reason, **kwargs):
    SIGNALS.setdefault(socket.id, []).append(f"disconnected {reason}")


class Main(Namespace):
    namespace = "/"

    async def on_connect(self, socket, auth):
        socket.data["auth"] = auth
        await socket.emit("welcome", auth)

    async def on_disconnect(self, socket, reason):
        DISCONNECTS[socket.id] = reason
        logging.getLogger("realtime.tests").info("on_disconnect %s: %s", socket.id, reason)

    async def on_echo(self, socket, *args):
        return args

    @event("echo-event")
    async def echo_event(self, socket, *args):
        await socket.emit("echo-event", *args)

    @event("echo-uncompressed")
    async def echo_uncompressed(self, socket, *args):
        await socket.compress(False).emit("echo-event", *args)

    def on_sync_echo(self, socket, *args):
        socket.emit("from-sync", *args)  # a def handler gets a socket whose methods block
        return args

    async def on_join(self, socket, *rooms):
        await socket.join(*rooms)
        return sorted(socket.rooms - {socket.id})

    async def on_leave(self, socket, *rooms):
        await socket.leave(*rooms)
        return sorted(socket.rooms - {socket.id})

    async def on_broadcast(self, socket, spec):
        """spec: to, except, volatile, local, include_self, event, args."""
        target = self.broadcast if spec.get("include_self") else socket.broadcast
        if spec.get("to"):
            target = target.to(*spec["to"])
        if spec.get("except"):
            target = target.except_(*spec["except"])
        if spec.get("volatile"):
            target = target.volatile
        if spec.get("local"):
            target = target.local
        await target.emit(spec["event"], *spec.get("args", []))
        return "sent"

    async def on_ask(self, socket, timeout, *args):
        try:
            return {"answer": await socket.emit_with_ack("question", *args, timeout=timeout)}
        except AckTimeout:
            return {"timeout": True}

    @event("ask-room")
    async def ask_room(self, socket, room, timeout):
        try:
            return {"answers": await self.to(room).timeout(timeout).emit_with_ack("question")}
        except AckTimeout as exc:
            return {"timeout": str(exc)}

    @event("disconnect-me")
    async def disconnect_me(self, socket, close=False):
        await socket.disconnect(close=close)

    async def on_boom(self, socket):
        raise RuntimeError("boom from a handler")

    async def on_whoami(self, socket):
        h = socket.handshake
        return {
            "id": socket.id,
            "namespace": socket.namespace,
            "rooms": sorted(socket.rooms),
            "data": socket.data,
            "user": str(socket.user),
            "handshake": {"query": h.query, "address": h.address, "auth": h.auth, "has_host": "host" in h.headers},
        }

    async def on_identity(self, socket):
        return identity(socket)

    async def on_remember(self, socket, value):
        socket.data["note"] = value
        return True

    async def on_recovery(self, socket):
        """Connection state recovery as the server sees it (tests/e2e/test_recovery.py)."""
        return {
            "id": socket.id,
            "recovered": socket.recovered,
            "rooms": sorted(socket.rooms),
            "note": socket.data.get("note"),
            "process": socket.runtime.key,
            "pid": os.getpid(),
        }

    async def on_enter(self, socket, *rooms):
        """A client asks to join rooms: declared rooms' policies apply (RoomRefused answers the ack)."""
        await socket.join_checked(*rooms)
        return sorted(socket.rooms - {socket.id})

    def on_sync_enter(self, socket, room):
        socket.join_checked(room)  # a def handler: RoomRefused crosses the thread hop too
        return "entered"

    @event("disconnect-reason")
    async def disconnect_reason(self, socket, socket_id):
        return DISCONNECTS.get(socket_id), SIGNALS.get(socket_id, [])

    @event("emit-reserved")
    async def emit_reserved(self, socket):
        try:
            await socket.emit("disconnect")
        except ValueError as exc:
            return str(exc)


class Refusing(Namespace):
    namespace = "/refuse"

    async def on_connect(self, socket, auth):
        if auth.get("token") != "good":
            raise ConnectionRefused("Not authorized", {"reason": "bad token", "got": auth.get("token")})


def require_key(socket, auth):
    if auth.get("key") != "k":
        raise ConnectionRefused("missing key")
    socket.data["checked"] = True


async def drop_forbidden(socket, event_name, args):
    if event_name == "forbidden":
        return False
    if event_name == "refused":
        raise EventRefused("not allowed here")
    return None


class Guarded(Namespace):
    namespace = "/guarded"
    middleware = [require_key]
    packet_middleware = [drop_forbidden]

    async def on_echo(self, socket, *args):
        return socket.data.get("checked"), *args

    async def on_forbidden(self, socket):
        return "should never run"

    async def on_refused(self, socket):
        return "should never run"


class Teams(Namespace):
    namespace = re.compile(r"/team-\d+")

    async def on_connect(self, socket, auth):
        await socket.emit("team", self.name)

    async def on_shout(self, socket, text):
        await self.emit("shout", self.name, text)

    async def on_whoami(self, socket):
        return {"id": socket.id, "rooms": sorted(socket.rooms), "auth": socket.handshake.auth}


class CatchAll(Namespace):
    namespace = "/any"

    async def on_any(self, socket, event_name, *args):
        await socket.emit("seen", event_name, *args)

    async def on_connect(self, socket, auth):
        socket.on_any_outgoing(lambda event_name, *args: socket.data.setdefault("out", []).append(event_name))

    async def on_outgoing(self, socket):
        return socket.data.get("out", [])


@io.on("connect", namespace="/decorated")
async def decorated_connect(socket, auth):
    await socket.emit("hello", "from a decorator")


@io.on("double", namespace="/decorated")
def decorated_double(socket, number):
    return number * 2


class Cluster(Namespace):
    """Cluster-wide operations, triggered by a client so the tests can run them on any process."""

    namespace = "/cluster"

    async def on_fetch(self, socket, room=None):
        from realtime import cluster

        sockets = await cluster.afetch_sockets(room=room)
        return sorted([s.id, s.rooms, s.server] for s in sockets)

    async def on_rooms(self, socket):
        from realtime import cluster

        return await cluster.arooms()

    async def on_disconnect_room(self, socket, room):
        from realtime import cluster

        return await cluster.adisconnect_sockets(room=room)

    async def on_join_room(self, socket, room, rooms):
        from realtime import cluster

        return await cluster.asockets_join(rooms, room=room)

    async def on_server_emit(self, socket, *args):
        from realtime import cluster

        return await cluster.aserver_side_emit("ping-servers", *args)

    async def on_server_emit_with_ack(self, socket, slow_key, timeout):
        """Node's serverSideEmitWithAck: the other processes' answers; the process ``slow_key`` answers late."""
        from realtime import cluster

        try:
            return {"answers": await cluster.aserver_side_emit_with_ack("maybe-slow", slow_key, timeout=timeout)}
        except AckTimeout as exc:
            return {"timeout": str(exc)}

    async def on_key(self, socket):
        from realtime.runtime import current

        return current().key


def _register_server_event():
    from realtime import cluster

    @cluster.on_server_event("ping-servers")
    async def ping_servers(*args):
        from realtime.runtime import current

        return [current().key, *args]

    @cluster.on_server_event("maybe-slow")
    async def maybe_slow(slow_key):
        from realtime.runtime import current

        if current().key == slow_key:
            await asyncio.sleep(3)  # past the asker's timeout: this process's answer is missing
        return current().key


_register_server_event()


def identity(socket):
    """Who the server thinks the client is: user name and the prefix of the token used, if any."""
    user = socket.user
    return {
        "user": user.get_username() if user.is_authenticated else None,
        "token": getattr(socket.credential, "prefix", None),
        "namespace": socket.namespace,
    }


class Identified(Namespace):
    async def on_identity(self, socket):
        return identity(socket)


class Private(Identified):
    namespace = "/private"
    login_required = True


class Staff(Identified):
    namespace = "/staff"
    permission_required = "realtime.view_connection"


class Ops(Identified):
    namespace = "/ops"
    groups_required = ["ops", "sre"]


class Hardening(Namespace):
    """What tests/e2e/test_hardening.py and test_limits.py drive: floods, slow readers, limits."""

    namespace = "/hard"

    async def on_join(self, socket, *rooms):
        await socket.join(*rooms)
        return len(socket.rooms)

    async def on_flood(self, socket, room, size, count, volatile=False):
        """``count`` broadcasts of ``size`` random characters to ``room``, the sender included.

        Random, so that WebSocket compression (uvicorn negotiates it) cannot shrink the flood.
        """
        body = secrets.token_urlsafe(size * 3 // 4)
        target = self.to(room).volatile if volatile else self.to(room)
        for i in range(count):
            await target.emit("flood", i, body)
        return count

    @event("room-size")
    async def room_size(self, socket, namespace, room):
        return len(socket.runtime.rooms.select(namespace, (room,)))

    async def on_relay(self, socket, room, *args):
        """Chat: to everyone in ``room`` but the sender; the ack says it went out."""
        await socket.to(room).emit("relayed", *args)
        return ("relayed", *args)

    async def on_one(self, socket, value):
        return value

    async def on_drop(self, socket):
        """The server drops the transport (no DISCONNECT packet): the client should reconnect."""
        await socket.session.close()

    async def on_wait(self, socket, seconds):
        await asyncio.sleep(seconds)
        return "waited"

    async def on_ask(self, socket, count):
        """``count`` emit_with_ack calls at once that the client never answers; how many were refused."""
        calls = [socket.emit_with_ack("never", timeout=1) for _ in range(count)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        return sum(isinstance(r, LimitExceeded) for r in results)

    @rate_limit("5/s")
    async def on_limited(self, socket):
        return "ok"

    async def on_counted(self, socket):
        return "ok"

    async def on_disconnect(self, socket, reason):
        logging.getLogger("realtime.tests").info("on_disconnect %s %s: %s", socket.namespace, socket.id, reason)


class Zombie(Namespace):
    """on_connect joins a room, then fails: the socket must not stay in the room."""

    namespace = "/zombie"

    async def on_connect(self, socket, auth):
        await socket.join("zombies")
        raise RuntimeError("on_connect failed after joining")


class Gaps(Namespace):
    """The README's "Also there" API for a real app: catch-all acks, transport, conn, timeout, handshake."""

    namespace = "/gaps"

    async def on_any(self, socket, event_name, *args):
        # answers the ack of an event with no handler of its own
        return {"caught": event_name, "args": list(args)}

    async def on_join(self, socket, room):
        await socket.join(room)
        return room

    async def on_whoami(self, socket):
        return {"id": socket.id, "transport": socket.transport, "conn": socket.conn.id}

    def on_whoami_sync(self, socket):
        """The same from a def handler, whose socket blocks instead of awaiting."""
        return {"transport": socket.transport, "conn": socket.conn.id}

    async def on_handshake(self, socket):
        shake = socket.handshake
        return {
            "probe_header": shake.headers.get("x-probe"),
            "query": shake.query,
            "auth": shake.auth,
            "address": shake.address,
            "time": shake.time.isoformat(),
            "url": shake.url,
            "secure": shake.secure,
        }

    async def on_ask(self, socket, seconds):
        try:
            return {"answer": await socket.timeout(seconds).emit_with_ack("question", "to you")}
        except AckTimeout:
            return {"timeout": True}

    async def on_drop(self, socket):
        await socket.conn.close()

    def on_drop_sync(self, socket):
        socket.conn.close()

    async def on_disconnect(self, socket, reason):
        await self.to("observers").emit("gone", socket.id, reason)

"""ALLOW_REQUEST hooks the security tests configure (tests/settings_security.py).

The test steers each handshake with an ``X-Verdict`` header:
``deny`` refuses, ``raise`` raises, ``user:<name>`` admits only if that user
exists (an ORM query), ``hold:<port>`` connects to the test's TCP port and
waits for it to send ``y`` (admit) or anything else (refuse), so the test
decides when the hook returns, and can prove the event loop kept serving
other clients meanwhile.
"""

import asyncio
import socket

from django.contrib.auth.models import User

NOT_CALLABLE = "a string, for the system check test"


def allow(request):
    """The sync hook: runs in a thread, so it may use the ORM and may block."""
    verdict = request.headers.get("x-verdict", "")
    if verdict == "deny":
        return False
    if verdict == "raise":
        raise RuntimeError("hook exploded")
    if verdict.startswith("user:"):
        return User.objects.filter(username=verdict.removeprefix("user:")).exists()
    if verdict.startswith("hold:"):
        with socket.create_connection(("127.0.0.1", int(verdict.removeprefix("hold:"))), timeout=20) as held:
            return held.recv(1) == b"y"
    return True


async def aallow(request):
    """The async hook: runs on the event loop."""
    verdict = request.headers.get("x-verdict", "")
    if verdict == "deny":
        return False
    if verdict == "raise":
        raise RuntimeError("hook exploded")
    if verdict.startswith("user:"):
        from asgiref.sync import sync_to_async

        return await sync_to_async(User.objects.filter(username=verdict.removeprefix("user:")).exists)()
    if verdict.startswith("hold:"):
        reader, writer = await asyncio.open_connection("127.0.0.1", int(verdict.removeprefix("hold:")))
        try:
            return await asyncio.wait_for(reader.read(1), 20) == b"y"
        finally:
            writer.close()
    return True

"""The demo chat in a real browser: two Chromium pages talk through the server (tests/js/browser_chat.mjs).

Debian's Chromium, driven by playwright-core; `make test` installs it when it is missing.
"""

import base64
import struct
import zlib

from tests.servers import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"


def png(width: int, height: int, pixel) -> bytes:
    """A truecolour PNG, written by hand: ``pixel(x, y)`` gives each (r, g, b)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_two_people_chat_in_chromium(server, node, browser_ready):
    picture = png(64, 48, lambda x, y: (220, 38, 38) if (x // 8 + y // 8) % 2 else (255, 255, 255))
    shots = {key: ARTIFACTS / f"demo-chat-{key}.png" for key in ("a", "b")}
    for shot in shots.values():
        shot.unlink(missing_ok=True)

    report = node(
        "browser_chat.mjs",
        server.url,
        {"png": base64.b64encode(picture).decode(), "screenshots": {k: str(v) for k, v in shots.items()}},
        timeout=120,
    )

    assert report["error"] is None, f"{report['error']}\nserver log tail:\n{server.log()[-3000:]}"
    assert report["pageErrors"] == []
    a, b = report["a"], report["b"]
    # both pages loaded the demo, connected to /chat and upgraded from polling to WebSocket
    assert a["title"] == b["title"] == "realtime chat demo"
    assert a["transport"] == b["transport"] == "websocket (upgraded from polling)"
    assert (a["whoami"], b["whoami"]) == ("You are alice in #django.", "You are bob in #django.")
    assert "bob joined #django" in a["sawJoin"]
    # typing, then the message, and the sender's ack
    assert b["typing"] == "alice is typing…"
    assert b["message"].startswith("alice hello from alice")
    assert a["ack"] == "delivered ✓"
    assert b["typingAfterSend"] == ""
    # the picture travelled as binary and B shows it from a Blob URL, byte for byte
    image = b["image"]
    assert image["src"].startswith("blob:")
    assert (image["alt"], image["width"], image["height"]) == ("checkers.png", 64, 48)
    assert base64.b64decode(image["base64"]) == picture
    assert image["link"].startswith("checkers.png")
    assert a["fileAck"] == "delivered ✓"
    assert a["oversizeAck"] == {"error": "files are limited to 512 KiB"}
    assert b["files"] == [image["link"]]  # the refused file never reached B
    # offline and back: the status line follows the Manager, and the chat resumes in the same room
    assert a["disconnected"].startswith("disconnected (")
    assert a["reconnecting"] == "reconnecting (attempt 2)…"
    assert "alice disconnected" in b["sawLeave"]
    assert a["transportAfterReconnect"] == "websocket (upgraded from polling)"
    assert a["whoamiAfterReconnect"] == "You are alice in #django."
    assert "alice joined #django" in b["sawRejoin"]
    assert b["afterReconnect"].startswith("alice back again")
    for shot in shots.values():
        assert shot.stat().st_size > 0, shot

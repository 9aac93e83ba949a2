"""realtime.logs: rate-limited warnings (on a fake clock) and redaction of CONNECT payloads."""

import logging

import pytest

from realtime.logs import RateLimitedLogger, clip, redact_frame, redact_packet
from realtime.protocol import socketio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Collects formatted lines, as a console handler would print them."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines():
    handler = Lines()
    logger = logging.getLogger("realtime.tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.lines
    logger.removeHandler(handler)


def limited(clock, lines=3, interval=10.0, **kwargs):
    return RateLimitedLogger("realtime.tests.logs", lines=lines, interval=interval, clock=clock, **kwargs)


def test_at_most_n_lines_per_key_per_interval_then_the_count(lines):
    clock = Clock()
    log = limited(clock)
    written = [log.warning("bad-host", "refused %s", i) for i in range(40)]
    assert written == [True] * 3 + [False] * 37
    assert lines == ["refused 0", "refused 1", "refused 2"]
    clock.now += 4.0
    assert log.warning("bad-host", "refused %s", "later") is False  # still the same window
    clock.now += 6.0
    assert log.warning("bad-host", "refused %s", "next") is True
    assert lines[-1] == "refused next (38 more suppressed in the last 10 s)"
    assert log.warning("bad-host", "refused %s", "again") is True
    assert lines[-1] == "refused again"  # the count is reported once


def test_keys_have_separate_budgets(lines):
    clock = Clock()
    log = limited(clock, lines=1)
    assert log.warning("origin", "a") and not log.warning("origin", "b")
    assert log.warning("bad-host", "c")
    assert lines == ["a", "c"]


def test_a_quiet_key_reports_nothing_suppressed(lines):
    clock = Clock()
    log = limited(clock, lines=2)
    log.warning("k", "one")
    clock.now += 60
    log.warning("k", "two")
    assert lines == ["one", "two"]


def test_disabled_levels_spend_no_budget(lines):
    clock = Clock()
    log = limited(clock, lines=1)
    logging.getLogger("realtime.tests.logs").setLevel(logging.WARNING)
    assert log.debug("k", "hidden") is False
    assert log.warning("k", "shown") is True
    assert lines == ["shown"]


def test_many_keys_share_one_overflow_window(lines):
    clock = Clock()
    log = limited(clock, lines=1, max_keys=2)
    assert [log.warning(f"k{i}", f"line {i}") for i in range(5)] == [True, True, True, False, False]
    assert lines == ["line 0", "line 1", "line 2"]


def test_limits_default_to_the_settings(settings, lines):
    settings.REALTIME = {"LOG_RATE_LINES": 2, "LOG_RATE_INTERVAL": 5_000}
    clock = Clock()
    log = RateLimitedLogger("realtime.tests.logs", clock=clock)
    assert [log.warning("k", "x") for _ in range(3)] == [True, True, False]
    clock.now += 5.0
    assert log.warning("k", "y") is True
    assert lines[-1] == "y (1 more suppressed in the last 5 s)"


def test_clip_quotes_and_cuts_client_text():
    assert clip("evil.example") == "'evil.example'"
    assert clip("a\nb") == "'a\\nb'"  # no forged log lines
    long = clip("x" * 5000)
    assert len(long) < 140 and long.endswith("(5002 chars)")


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('40/probe,{"token":"rt_secret"}', "40/probe,<auth redacted>"),
        ('40{"token":"rt_secret"}', "40<auth redacted>"),
        ("40", "40"),
        ("40/chat,", "40/chat,"),
        ('42["chat","hi"]', '42["chat","hi"]'),
        ('2\x1e40/a,{"password":"p"}\x1e42["x"]', '2\x1e40/a,<auth redacted>\x1e42["x"]'),
        (b'40{"token":"rt_secret"}\x1e3', b"40<auth redacted>\x1e3"),
        (b"\x00\x01", b"\x00\x01"),
    ],
)
def test_redact_frame_hides_connect_payloads_only(frame, expected):
    assert redact_frame(frame) == expected


def test_redact_packet_keeps_everything_but_the_auth():
    connect = socketio.Packet(socketio.PacketType.CONNECT, "/private", {"token": "rt_secret"})
    text = repr(redact_packet(connect))
    assert "rt_secret" not in text
    assert "/private" in text and "<auth redacted>" in text
    event = socketio.Packet(socketio.PacketType.EVENT, "/", ["chat", "hi"])
    assert redact_packet(event) is event


def test_request_and_handshake_reprs_hold_no_credentials():
    """An ALLOW_REQUEST hook or a handler that logs ``%r`` of what it got leaks nothing."""
    from datetime import UTC, datetime

    from realtime.namespaces import Handshake
    from realtime.sessions import ClientRequest

    headers = {"cookie": "sessionid=s3cret", "authorization": "Bearer rt_x_s3cret"}
    request = ClientRequest(
        path="/socket.io/",
        query_string="token=s3cret",
        query={"token": "s3cret"},
        raw_headers=tuple((k.encode(), v.encode()) for k, v in headers.items()),
        address="127.0.0.1",
        secure=False,
    )
    handshake = Handshake(
        headers=headers,
        query={"token": "s3cret"},
        address="127.0.0.1",
        auth={"token": "s3cret"},
        time=datetime.now(UTC),
        url="/socket.io/?token=s3cret",
    )
    for value in (request, handshake):
        assert "s3cret" not in repr(value) and "127.0.0.1" in repr(value)

"""Request checks: the spec's exact refusals, and CORS."""

import json

import pytest

from realtime.protocol.http import Request, check_request, cors_headers, origin_allowed

BOTH = ("polling", "websocket")


def check(method="GET", websocket=False, origin=None, host="h:1", allowed=(), transports=BOTH, **query):
    request = Request(method=method, query=query, origin=origin, host=host, websocket=websocket)
    return check_request(request, transports=transports, allowed_origins=allowed)


@pytest.mark.parametrize(
    ("kwargs", "status", "body"),
    [
        ({"EIO": "4"}, 400, {"code": 0, "message": "Transport unknown"}),
        ({"EIO": "4", "transport": "abc"}, 400, {"code": 0, "message": "Transport unknown"}),
        ({"transport": "polling"}, 400, {"code": 5, "message": "Unsupported protocol version"}),
        ({"EIO": "abc", "transport": "polling"}, 400, {"code": 5, "message": "Unsupported protocol version"}),
        ({"EIO": "3", "transport": "polling"}, 400, {"code": 5, "message": "Unsupported protocol version"}),
        ({"method": "POST", "EIO": "4", "transport": "polling"}, 400, {"code": 2, "message": "Bad handshake method"}),
        ({"method": "PUT", "EIO": "4", "transport": "polling"}, 400, {"code": 2, "message": "Bad handshake method"}),
        ({"method": "PUT", "EIO": "4", "transport": "polling", "sid": "x"}, 400, {"code": 3, "message": "Bad request"}),
        ({"EIO": "4", "transport": "websocket"}, 400, {"code": 3, "message": "Bad request"}),
        (
            {"EIO": "4", "transport": "polling", "origin": "http://evil.example"},
            403,
            {"code": 4, "message": "Forbidden"},
        ),
    ],
)
def test_refusals(kwargs, status, body):
    refusal = check(**kwargs)
    assert refusal is not None
    assert refusal.status == status
    assert json.loads(refusal.body) == body


def test_good_requests_pass():
    assert check(EIO="4", transport="polling") is None
    assert check(method="POST", EIO="4", transport="polling", sid="x") is None
    assert check(websocket=True, EIO="4", transport="websocket") is None
    assert check(websocket=True, EIO="4", transport="websocket", sid="x") is None


def test_transport_not_offered_is_unknown():
    refusal = check(websocket=True, transports=("polling",), EIO="4", transport="websocket")
    assert refusal is not None and refusal.code == 0


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "h:1", (), True),
        ("http://h:1", "h:1", (), True),
        ("https://h:1", "h:1", (), True),
        ("http://evil:1", "h:1", (), False),
        ("http://evil:1", "h:1", ("http://evil:1",), True),
        ("http://evil:2", "h:1", ("http://evil:1",), False),
        ("http://anything", "h:1", ("*",), True),
        ("null", "h:1", (), False),
    ],
)
def test_origin_allowed(origin, host, allowed, ok):
    assert origin_allowed(origin, host, allowed) is ok


def test_cors_headers_reflect_the_origin_and_answer_preflight():
    headers = dict(cors_headers("http://a", ("*",), preflight=True, request_headers="content-type"))
    assert headers[b"access-control-allow-origin"] == b"http://a"
    assert headers[b"access-control-allow-credentials"] == b"true"
    assert headers[b"access-control-allow-methods"] == b"GET, POST, OPTIONS"
    assert headers[b"access-control-allow-headers"] == b"content-type"
    assert cors_headers(None, ("*",)) == []

"""Request checks: the spec's exact refusals, and CORS."""

import json

import pytest

from realtime.protocol.http import (
    Request,
    check_request,
    cors_headers,
    credentials_allowed,
    origin_allowed,
    same_origin,
    site_of_origin,
)

BOTH = ("polling", "websocket")


def check(method="GET", websocket=False, origin=None, host="h:1", allowed=(), transports=BOTH, scheme="http", **query):
    request = Request(method=method, query=query, origin=origin, host=host, websocket=websocket, scheme=scheme)
    return check_request(request, transports=transports, allowed_origins=allowed)


@pytest.mark.parametrize(
    ("kwargs", "status", "body"),
    [
        ({"EIO": "4"}, 400, {"code": 0, "message": "Transport unknown"}),
        ({"EIO": "4", "transport": "abc"}, 400, {"code": 0, "message": "Transport unknown"}),
        ({"transport": "polling"}, 400, {"code": 5, "message": "Unsupported protocol version"}),
        ({"EIO": "abc", "transport": "polling"}, 400, {"code": 5, "message": "Unsupported protocol version"}),
        (
            {"EIO": "3", "transport": "polling"},
            400,
            {
                "code": 5,
                "message": "Unsupported protocol version: Engine.IO v3 (Socket.IO v2 clients) needs "
                'REALTIME["ALLOW_EIO3"] = True',
            },
        ),
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
    ("origin", "scheme", "host", "allowed", "ok"),
    [
        (None, "http", "h:1", (), True),
        ("http://h:1", "http", "h:1", (), True),
        # the scheme is part of the origin: an http page is not the https site, nor the reverse
        ("https://h:1", "http", "h:1", (), False),
        ("http://h:1", "https", "h:1", (), False),
        ("https://h", "https", "h", (), True),
        # default ports are the same origin written two ways; case does not matter in scheme and host
        ("https://h", "https", "h:443", (), True),
        ("http://H:80", "http", "h", (), True),
        ("http://h:8080", "http", "h", (), False),
        ("http://[::1]:8000", "http", "[::1]:8000", (), True),
        ("http://evil:1", "http", "h:1", (), False),
        ("http://evil:1", "http", "h:1", ("http://evil:1",), True),
        ("http://evil:2", "http", "h:1", ("http://evil:1",), False),
        ("https://evil:1", "http", "h:1", ("http://evil:1",), False),
        ("https://evil", "http", "h:1", ("https://EVIL:443",), True),
        ("http://anything", "http", "h:1", ("*",), True),
        ("null", "http", "h:1", (), False),
        # userinfo, paths and junk never match anything, even with the host's name in them
        ("http://h:1@evil", "http", "evil", (), False),
        ("http://x@h:1", "http", "h:1", (), False),
        ("http://h:1/path", "http", "h:1", (), False),
        ("http://h:99999", "http", "h:99999", (), False),
        ("http://h:1", "http", None, (), False),
    ],
)
def test_origin_allowed(origin, scheme, host, allowed, ok):
    assert origin_allowed(origin, allowed, scheme=scheme, host=host) is ok


@pytest.mark.parametrize(
    ("origin", "scheme", "host", "expected"),
    [
        ("http://h:1", "http", "h:1", True),
        ("https://h:1", "http", "h:1", False),
        ("http://h:1", "https", "h:1", False),
        ("https://h", "https", "h:443", True),
        ("ws://h:1", "http", "h:1", False),  # browsers send http(s) origins; anything else is nobody's
        ("null", "http", "h:1", False),
    ],
)
def test_same_origin_compares_scheme_host_and_port(origin, scheme, host, expected):
    assert same_origin(origin, scheme=scheme, host=host) is expected


def test_site_of_origin_normalises():
    assert site_of_origin("HTTPS://Example.COM") == ("https", "example.com", 443)
    assert site_of_origin("http://example.com:8080") == ("http", "example.com", 8080)
    assert site_of_origin("file://") is None


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        (None, ("*",), True),  # no Origin: not a browser's cross-site request
        ("http://h:1", (), True),  # same origin
        ("http://listed", ("http://listed",), True),
        ("http://listed", ("*", "http://listed"), True),
        ("http://evil", ("*",), False),  # "*" lets anyone in, never with cookies
        ("https://h:1", ("*",), False),  # the same host over another scheme is another site
    ],
)
def test_credentials_only_for_the_same_or_a_named_origin(origin, allowed, ok):
    assert credentials_allowed(origin, allowed, scheme="http", host="h:1") is ok


def request(origin, scheme="http", host="h:1"):
    return Request(method="GET", query={}, origin=origin, host=host, scheme=scheme)


def test_cors_headers_reflect_a_named_origin_with_credentials_and_answer_preflight():
    headers = dict(cors_headers(request("http://a"), ("http://a",), preflight=True, request_headers="content-type"))
    assert headers[b"access-control-allow-origin"] == b"http://a"
    assert headers[b"access-control-allow-credentials"] == b"true"
    assert headers[b"vary"] == b"Origin"
    assert headers[b"access-control-allow-methods"] == b"GET, POST, OPTIONS"
    assert headers[b"access-control-allow-headers"] == b"content-type"
    assert cors_headers(request(None), ("*",)) == []


def test_cors_headers_for_star_never_allow_credentials():
    for preflight in (False, True):
        headers = dict(cors_headers(request("http://evil"), ("*",), preflight=preflight))
        assert headers[b"access-control-allow-origin"] == b"*"
        assert b"access-control-allow-credentials" not in headers
    # the same origin still gets credentials with "*" listed
    same = dict(cors_headers(request("http://h:1"), ("*",)))
    assert same[b"access-control-allow-origin"] == b"http://h:1"
    assert same[b"access-control-allow-credentials"] == b"true"


def test_scheme_decides_the_origin_check_of_a_request():
    assert check(EIO="4", transport="polling", origin="https://h:1", scheme="https") is None
    refusal = check(EIO="4", transport="polling", origin="https://h:1", scheme="http")
    assert refusal is not None and refusal.code == 4


def test_eio3_passes_when_allowed_and_other_versions_still_do_not():
    request = Request(method="GET", query={"EIO": "3", "transport": "polling"}, host="h:1")
    assert check_request(request, transports=BOTH, allowed_origins=(), allow_eio3=True) is None
    for version in ("2", "5", "03", "3 "):
        request = Request(method="GET", query={"EIO": version, "transport": "polling"}, host="h:1")
        refusal = check_request(request, transports=BOTH, allowed_origins=(), allow_eio3=True)
        assert refusal is not None and refusal.message == "Unsupported protocol version"

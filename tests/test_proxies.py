"""A proxy whose X-Forwarded-For the ASGI server ignores is noticed, once; allow-lists judge every address."""

import logging

import pytest

from realtime.proxies import (
    SUSPECT_CLIENTS,
    SUSPECT_HANDSHAKES,
    ProxyWatch,
    allowed,
    fix_for_this_server,
    forwarded_for,
    networks,
)


def xff(*values):
    return [(b"host", b"example.com"), *((b"x-forwarded-for", v.encode()) for v in values)]


def test_forwarded_for_reads_every_header_in_order():
    assert forwarded_for(xff("203.0.113.9, 10.0.0.2", " 198.51.100.7 ")) == ["203.0.113.9", "10.0.0.2", "198.51.100.7"]
    assert forwarded_for([(b"host", b"x")]) is None


def test_a_proxy_whose_header_is_ignored_is_reported_once(caplog):
    watch = ProxyWatch()
    caplog.set_level(logging.ERROR, "realtime.engineio")
    for i in range(SUSPECT_HANDSHAKES - 1):
        watch.handshake("127.0.0.1", xff(f"203.0.113.{i % 5 + 1}"))
    assert watch.untrusted is None and not caplog.records  # not yet: a few could be a developer's own tool
    watch.handshake("127.0.0.1", xff("203.0.113.77"))
    assert watch.untrusted == "127.0.0.1"
    for _ in range(50):
        watch.handshake("127.0.0.1", xff("203.0.113.78"))
    (record,) = caplog.records
    message = record.getMessage()
    assert "Handshakes from 127.0.0.1 carry X-Forwarded-For" in message
    assert "--proxy-headers" in message and "--forwarded-allow-ips=127.0.0.1" in message


@pytest.mark.parametrize(
    ("address", "headers"),
    [
        ("203.0.113.9", xff("203.0.113.9")),  # the server applied the header (daphne --proxy-headers, uvicorn)
        ("198.51.100.7", xff("10.0.0.1, 198.51.100.7")),  # uvicorn: the rightmost untrusted address
        ("203.0.113.9", xff("198.51.100.7")),  # a public client sending its own header: not a proxy of ours
        ("127.0.0.1", [(b"host", b"x")]),  # no proxy at all
    ],
)
def test_no_report_when_the_address_is_the_clients(address, headers, caplog):
    watch = ProxyWatch()
    caplog.set_level(logging.ERROR, "realtime.engineio")
    for _ in range(SUSPECT_HANDSHAKES * 3):
        watch.handshake(address, headers)
    assert watch.untrusted is None and not caplog.records


def test_one_client_behind_the_proxy_is_not_enough():
    """A single forwarded client (a developer's local proxy) is no proof: SUSPECT_CLIENTS distinct ones are."""
    watch = ProxyWatch()
    for _ in range(SUSPECT_HANDSHAKES * 3):
        watch.handshake("10.1.2.3", xff("203.0.113.9"))
    assert watch.untrusted is None
    for i in range(SUSPECT_CLIENTS):
        watch.handshake("10.1.2.3", xff(f"198.51.100.{i}"))
    assert watch.untrusted == "10.1.2.3"


def test_the_fix_names_the_running_server_first(monkeypatch):
    import sys

    for name in ("gunicorn.arbiter", "gunicorn.workers", "uvicorn.server", "daphne.server"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "daphne.server", sys)
    assert fix_for_this_server("127.0.0.1").startswith("Fix: run daphne with --proxy-headers; or ")
    monkeypatch.setitem(sys.modules, "uvicorn.server", sys)
    assert fix_for_this_server("10.0.0.5").startswith(
        "Fix: run uvicorn with --proxy-headers --forwarded-allow-ips=10.0.0.5"
    )


def test_allow_lists_judge_every_address():
    allow = networks(["127.0.0.1", "::1", "10.0.0.0/8"])
    assert allowed(["127.0.0.1"], allow)
    assert allowed(["::1"], allow) and allowed(["10.20.30.40"], allow)
    assert not allowed(["127.0.0.1", "203.0.113.9"], allow)  # through a proxy whose header the server ignored
    assert not allowed(["192.168.1.1"], allow)
    assert not allowed([], allow)
    assert not allowed(["not-an-address"], allow)
    with pytest.raises(ValueError, match="'localhost' is not an IP address or network"):
        networks(["localhost"])

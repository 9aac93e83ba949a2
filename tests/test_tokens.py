"""Tokens, the realtime_token command, the declared-room cache and the new settings checks: no server needed."""

from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser, User
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.utils import timezone

from realtime import policy, tokens
from realtime.management.commands.realtime_token import parse_ttl
from realtime.models import AccessToken, Room
from realtime.server import io as socketio_server

# -- the token string ---------------------------------------------------------------------------


def test_generated_tokens_split_and_match_their_hash():
    raw, prefix, stored = tokens.generate()
    assert raw.startswith(f"rt_{prefix}_") and len(prefix) == 8
    assert tokens.split(raw) == (prefix, raw.split("_", 2)[2])
    assert tokens.matches(tokens.split(raw)[1], stored)
    assert not tokens.matches(tokens.split(raw)[1] + "x", stored)
    assert stored == tokens.hash_secret(tokens.split(raw)[1]) and len(stored) == 64
    assert raw.split("_", 2)[2] not in stored


def test_every_token_is_new():
    assert len({tokens.generate()[0] for _ in range(200)}) == 200


@pytest.mark.parametrize(
    ("raw", "ours", "parts"),
    [
        ("rt_0123abcd_" + "s" * 43, True, ("0123abcd", "s" * 43)),
        ("rt_0123abcd_" + "s_-" * 10, True, ("0123abcd", "s_-" * 10)),
        ("rt_0123ABCD_" + "s" * 43, True, None),  # prefixes are lower-case hex
        ("rt_0123abc_" + "s" * 43, True, None),
        ("rt_0123abcd_short", True, None),
        ("rt_", True, None),
        ("py", False, None),
        ("Bearer rt_x", False, None),
        (None, False, None),
        (42, False, None),
    ],
)
def test_token_shapes(raw, ours, parts):
    assert tokens.is_ours(raw) is ours
    if isinstance(raw, str):
        assert tokens.split(raw) == parts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_ttl(text, expected):
    assert parse_ttl(text) == expected


@pytest.mark.parametrize("text", ["30", "0d", "-1d", "1y", "d", "1.5h"])
def test_bad_ttl(text):
    with pytest.raises(CommandError):
        parse_ttl(text)


# -- the model and the management command -----------------------------------------------------------


@pytest.mark.django_db
def test_issue_stores_only_the_hash():
    user = User.objects.create_user("hash-only")
    token, raw = AccessToken.objects.issue(user, name="n", ttl=timedelta(days=1), namespaces=["/chat"])
    stored = AccessToken.objects.get(pk=token.pk)
    assert raw.split("_", 2)[2] not in {stored.secret_hash, stored.prefix, stored.name}
    assert stored.allows_namespace("/chat") and not stored.allows_namespace("/")
    assert not stored.is_expired() and stored.is_expired(timezone.now() + timedelta(days=2))


@pytest.mark.django_db
def test_command_creates_lists_and_revokes():
    user = User.objects.create_user("cli-user")
    out, err = StringIO(), StringIO()
    call_command(
        "realtime_token",
        "create",
        "cli-user",
        "--ttl",
        "30d",
        "--namespace",
        "/chat",
        "--name",
        "kiosk",
        stdout=out,
        stderr=err,
    )
    raw = out.getvalue().strip()
    token = AccessToken.objects.get(user=user)
    assert tokens.split(raw)[0] == token.prefix
    assert tokens.matches(tokens.split(raw)[1], token.secret_hash)
    assert (token.name, token.allowed_namespaces) == ("kiosk", ["/chat"])
    assert timedelta(days=29, hours=23) < token.expires - timezone.now() <= timedelta(days=30)
    assert "It is not stored" in err.getvalue()

    listing = StringIO()
    call_command("realtime_token", "list", stdout=listing)
    line = next(line for line in listing.getvalue().splitlines() if line.startswith(token.prefix))
    assert "cli-user" in line and "active" in line and "/chat" in line and "kiosk" in line
    assert raw not in listing.getvalue()

    revoked = StringIO()
    call_command("realtime_token", "revoke", token.prefix, stdout=revoked)
    assert f"revoked token {token.prefix}" in revoked.getvalue()
    assert AccessToken.objects.get(pk=token.pk).revoked
    listing = StringIO()
    call_command("realtime_token", "list", "--user", "cli-user", stdout=listing)
    assert "revoked" in listing.getvalue()


@pytest.mark.django_db
def test_command_refuses_unknown_users_tokens_and_namespaces():
    with pytest.raises(CommandError, match="no user"):
        call_command("realtime_token", "create", "nobody-at-all", stdout=StringIO(), stderr=StringIO())
    User.objects.create_user("ns-user")
    with pytest.raises(CommandError, match="--namespace"):
        call_command("realtime_token", "create", "ns-user", "--namespace", "chat", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="no token"):
        call_command("realtime_token", "revoke", "ffffffff", stdout=StringIO())


# -- the declared-room cache ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # channels' database_sync_to_async closes connections between calls
def test_declared_rooms_are_read_once_until_a_room_changes(monkeypatch):
    loads = []
    real_load = policy._load
    monkeypatch.setattr(policy, "_load", lambda: loads.append(1) or real_load())
    policies = socketio_server.policies  # the one the receivers invalidate
    policies.invalidate()
    socket = SimpleNamespace(namespace="/", user=AnonymousUser())

    def check(socket, room):
        async_to_sync(policies.check_join)(socket.namespace, room, socket.user)

    for i in range(20):
        check(socket, f"undeclared-{i}")
    assert len(loads) == 1  # one query set for the process, none per join

    Room.objects.create(name="members", access="authenticated")  # on commit, a receiver drops every copy
    with pytest.raises(policy.RoomRefused, match="permission denied"):
        check(socket, "members")
    assert len(loads) == 2


# -- settings checks ---------------------------------------------------------------------------------------


def ids(messages):
    return sorted(m.id for m in messages if m.id and m.id.startswith("realtime."))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"AUTHENTICATORS": "realtime.auth.TokenAuthentication"}, ["realtime.E007"]),
        ({"AUTHENTICATORS": ["realtime.auth.NoSuchThing"]}, ["realtime.E007"]),
        ({"AUTHENTICATORS": ["realtime.auth.Identity"]}, ["realtime.E007"]),  # no authenticate()
        ({"REQUIRE_DECLARED_ROOMS": "yes"}, ["realtime.E008"]),
        ({"REGISTRY": 1}, ["realtime.E008"]),
        ({"REGISTRY_FLUSH_INTERVAL": 0}, ["realtime.E002"]),
        ({"METRICS_INTERVAL": "10s"}, ["realtime.E002"]),
    ],
)
def test_bad_auth_and_registry_settings(settings, value, expected):
    settings.REALTIME = value
    assert ids(run_checks()) == expected


def test_good_auth_settings(settings):
    settings.REALTIME = {
        "AUTHENTICATORS": ["realtime.auth.SessionAuthentication"],
        "REQUIRE_DECLARED_ROOMS": True,
        "REGISTRY": False,
    }
    assert ids(run_checks()) == []


# -- the token authenticator -------------------------------------------------------------------------------


def client_request(headers=()):
    from realtime.sessions import ClientRequest

    raw = tuple((name.encode(), value.encode()) for name, value in headers)
    return ClientRequest(
        path="/socket.io/", query_string="", query={}, raw_headers=raw, address="127.0.0.1", secure=False
    )


@pytest.mark.django_db(transaction=True)  # channels' database_sync_to_async closes connections between calls
def test_token_validation_is_one_query():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from realtime.auth import TokenAuthentication, authenticate

    user = User.objects.create_user("one-query")
    token, raw = AccessToken.objects.issue(user)
    authenticator = TokenAuthentication()
    for request, auth in (
        (client_request(), {"token": raw}),
        (client_request([("Authorization", f"Bearer {raw}")]), {}),
    ):
        with CaptureQueriesContext(connection) as queries:
            found_user, found_token = async_to_sync(authenticator.authenticate)(request, auth)
        assert (found_user, found_token) == (user, token)
        assert len(queries) == 1, [q["sql"] for q in queries]
    # not a realtime token: left to the next authenticator, without a query
    with CaptureQueriesContext(connection) as queries:
        assert async_to_sync(authenticator.authenticate)(client_request(), {"token": "app-specific"}) is None
        identity = async_to_sync(authenticate)(client_request(), {"token": "app-specific"})
    assert len(queries) == 0 and not identity.user.is_authenticated and identity.credential is None

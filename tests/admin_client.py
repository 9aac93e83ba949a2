"""What the auth and admin tests share: users and tokens in the run's database, an operator in the admin.

``AdminSession`` logs in through Django's own login view on a real server
and posts admin actions the way the changelist's form does (CSRF included).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any

import requests
from django.test import override_settings

_names = itertools.count()
PASSWORD = "correct horse battery staple"


def unique(stem: str) -> str:
    """Names are unique per run: the database is shared by every test and never flushed."""
    return f"{stem}-{os.getpid()}-{next(_names)}"


# -- ORM helpers (run them with the ``orm`` fixture) ------------------------------------------------


def make_user(stem: str = "user", *, superuser: bool = False, perms: tuple[str, ...] = (), groups=()) -> Any:
    from django.contrib.auth.models import Group, Permission, User

    name = unique(stem)
    if superuser:
        user = User.objects.create_superuser(name, f"{name}@example.com", PASSWORD)
    else:
        user = User.objects.create_user(name, f"{name}@example.com", PASSWORD)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def make_token(user: Any, **options: Any) -> tuple[Any, str]:
    from realtime.models import AccessToken

    return AccessToken.objects.issue(user, name=options.pop("name", "test"), **options)


def session_cookie(user: Any) -> str:
    """A Django session for ``user`` in the database, as a browser's Cookie header would carry it."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@contextmanager
def redis_layer(url: str):
    """This (pytest) process on the cluster's channel layer, so its receivers reach the servers."""
    layer = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [url]}}}
    with override_settings(CHANNEL_LAYERS=layer):
        yield


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 3.0, interval: float = 0.05) -> Any:
    """Poll ``check`` (another process's database writes have no event to await) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check.__qualname__} -> {result!r}")
        await asyncio.sleep(interval)  # poll cadence, not synchronisation


# -- an operator in the admin -----------------------------------------------------------------------


class AdminSession:
    """A logged-in admin user talking HTTP to one server process (sync: call it through asyncio.to_thread)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def login(self, username: str, password: str = PASSWORD) -> AdminSession:
        self.http.get(self.url("/admin/login/"), timeout=10).raise_for_status()
        response = self.http.post(
            self.url("/admin/login/?next=/admin/"),
            data={"username": username, "password": password, "csrfmiddlewaretoken": self.csrf, "next": "/admin/"},
            timeout=10,
        )
        response.raise_for_status()
        assert "sessionid" in self.http.cookies, f"login failed:\n{response.text[:2000]}"
        return self

    @property
    def csrf(self) -> str:
        return self.http.cookies["csrftoken"]

    @property
    def cookie_header(self) -> str:
        return f"sessionid={self.http.cookies['sessionid']}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str) -> str:
        response = self.http.get(self.url(path), timeout=15)
        response.raise_for_status()
        return response.text

    def post(self, path: str, data: dict[str, Any]) -> str:
        response = self.http.post(self.url(path), data={**data, "csrfmiddlewaretoken": self.csrf}, timeout=15)
        response.raise_for_status()
        return response.text

    def action(self, changelist: str, action: str, ids: list[Any], **form: Any) -> str:
        """Run a changelist action on ``ids``; with ``form`` fields, fill in the action's own form too."""
        selection = {"action": action, "_selected_action": [str(i) for i in ids], "select_across": "0"}
        page = self.post(changelist, {**selection, "index": "0"})
        if not form:
            return page
        assert 'id="realtime-action-form"' in page, page[:3000]
        return self.post(changelist, {**selection, "apply": "yes", **form})


class _Rows(HTMLParser):
    """The result table of an admin changelist: one dict per row, field name -> cell text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self._field: str | None = None
        self._in_results = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table" and attributes.get("id") == "result_list":
            self._in_results = True
        elif self._in_results and tag == "tr" and attributes.get("role") != "row_header":
            self.rows.append({})
        elif self._in_results and tag in ("td", "th") and self.rows:
            match = re.search(r"field-(\w+)", attributes.get("class") or "")
            self._field = match.group(1) if match else None
            if self._field:
                self.rows[-1][self._field] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._field = None
        elif tag == "table":
            self._in_results = False

    def handle_data(self, data: str) -> None:
        if self._field and self.rows:
            self.rows[-1][self._field] += data.strip()


def changelist_rows(html: str) -> list[dict[str, str]]:
    parser = _Rows()
    parser.feed(html)
    return [row for row in parser.rows if row]

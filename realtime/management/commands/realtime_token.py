"""``manage.py realtime_token create USER [--ttl 30d] [--namespace /chat] [--name NAME]``, ``list``, ``revoke PREFIX``.

``create`` prints the token alone on stdout (``TOKEN=$(manage.py realtime_token create kiosk)``)
and what it is on stderr; the secret is not stored and cannot be shown again.
``revoke`` disconnects the token's live sockets on every server process.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from realtime.models import AccessToken, validate_namespaces

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_ttl(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w``."""
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if not match or int(match.group(1)) == 0:
        raise CommandError(f"--ttl {text!r}: write a positive number and a unit, e.g. 90s, 15m, 12h, 30d, 2w")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = "Create, list and revoke realtime access tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="issue a token for USER (username)")
        create.add_argument("user")
        create.add_argument("--ttl", help="lifetime, e.g. 30d; default: never expires")
        create.add_argument("--namespace", action="append", default=[], help="allowed namespace (repeatable)")
        create.add_argument("--name", default="", help="what the token is for")
        listing = sub.add_parser("list", help="list tokens")
        listing.add_argument("--user", help="only this user's tokens")
        revoke = sub.add_parser("revoke", help="revoke a token by its prefix (or the whole token)")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"do_{options['action']}")(options)

    def do_create(self, options: dict[str, Any]) -> None:
        User = get_user_model()
        try:
            user = User.objects.get_by_natural_key(options["user"])
        except User.DoesNotExist:
            raise CommandError(f"no user {options['user']!r}") from None
        namespaces = options["namespace"]
        try:
            validate_namespaces(" ".join(namespaces))
        except Exception as exc:
            raise CommandError(f"--namespace: {exc}") from exc
        ttl = parse_ttl(options["ttl"]) if options["ttl"] else None
        token, secret = AccessToken.objects.issue(user, name=options["name"], ttl=ttl, namespaces=namespaces)
        self.stdout.write(secret)
        expires = f"expires {token.expires:%Y-%m-%d %H:%M %Z}" if token.expires else "never expires"
        where = ", ".join(namespaces) or "all namespaces"
        self.stderr.write(f"token {token.prefix} for {user} ({where}; {expires}). It is not stored: copy it now.")

    def do_list(self, options: dict[str, Any]) -> None:
        tokens = AccessToken.objects.select_related("user").order_by("created")
        if options["user"]:
            tokens = tokens.filter(user__username=options["user"])
        now = timezone.now()
        self.stdout.write(f"{'PREFIX':10} {'USER':16} {'STATUS':8} {'EXPIRES':17} {'LAST USED':17} NAMESPACES  NAME")
        for t in tokens:
            status = "revoked" if t.revoked else "expired" if t.is_expired(now) else "active"
            self.stdout.write(
                f"{t.prefix:10} {t.user.get_username()[:16]:16} {status:8} {_when(t.expires):17} "
                f"{_when(t.last_used):17} {t.namespaces or '*':11} {t.name}"
            )

    def do_revoke(self, options: dict[str, Any]) -> None:
        prefix = options["prefix"]
        if prefix.startswith("rt_"):
            prefix = prefix.split("_")[1]
        try:
            token = AccessToken.objects.get(prefix=prefix)
        except AccessToken.DoesNotExist:
            raise CommandError(f"no token with prefix {prefix!r}") from None
        if token.revoked:
            self.stdout.write(f"token {prefix} was already revoked")
            return
        token.revoke()
        self.stdout.write(f"revoked token {prefix}; its live sockets are disconnected")


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"

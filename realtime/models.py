"""What realtime keeps in the database: tokens, declared rooms, and the live registry the admin reads.

``AccessToken`` and ``Room`` are written by people (admin, management
command). ``ServerProcess``, ``Connection`` and ``Sample`` are written only by
the serving processes' registry (realtime/registry.py), off the event loop:
the runtime itself never queries them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from . import tokens

if TYPE_CHECKING:
    # django-stubs' name for the AUTH_USER_MODEL class (its plugin resolves it); absent at run time.
    from django.contrib.auth.models import _User


def parse_namespaces(value: str) -> list[str]:
    """``"/chat, /news"`` (commas or spaces) as ``["/chat", "/news"]``."""
    return [name for name in value.replace(",", " ").split() if name]


def validate_namespaces(value: str) -> None:
    bad = [name for name in parse_namespaces(value) if not name.startswith("/")]
    if bad:
        raise ValidationError(f"Namespaces start with '/': {', '.join(bad)}")


class AccessTokenManager(models.Manager["AccessToken"]):
    def issue(
        self,
        user: _User,
        name: str = "",
        ttl: timedelta | None = None,
        namespaces: list[str] | tuple[str, ...] = (),
    ) -> tuple[AccessToken, str]:
        """Create a token; returns it with its full secret string, which is never stored."""
        token = self.model(
            user=user,
            name=name,
            expires=timezone.now() + ttl if ttl else None,
            namespaces=" ".join(namespaces),
        )
        secret = token.set_secret()
        token.save()
        return token, secret


class AccessToken(models.Model):
    """A bearer token for Socket.IO clients: ``io(url, {auth: {token}})`` or ``Authorization: Bearer``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="realtime_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for, e.g. 'kiosk in hall B'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="Identifies the token; not secret.")
    secret_hash = models.CharField(max_length=64, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False)
    namespaces = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_namespaces],
        help_text="Namespaces it may connect to, separated by spaces or commas. Empty: all.",
    )

    objects = AccessTokenManager()

    class Meta:
        ordering = ["-created"]
        verbose_name = "access token"

    def __str__(self) -> str:
        return f"{self.name or 'token'} ({self.prefix}…)"

    def set_secret(self) -> str:
        """Give the token a new secret; returns the full token string (show it once)."""
        raw, self.prefix, self.secret_hash = tokens.generate()
        return raw

    @property
    def allowed_namespaces(self) -> list[str]:
        return parse_namespaces(self.namespaces)

    def allows_namespace(self, namespace: str) -> bool:
        allowed = self.allowed_namespaces
        return not allowed or namespace in allowed

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= (now or timezone.now())

    def revoke(self) -> None:
        """Revoke and save: the post_save receiver disconnects its sockets everywhere."""
        self.revoked = True
        self.save(update_fields=["revoked"])


class Room(models.Model):
    """A declared room: who may join it (``socket.join_checked``), how many, whether it is open."""

    class Access(models.TextChoices):
        PUBLIC = "public", "anyone"
        AUTHENTICATED = "authenticated", "logged-in users"
        USERS = "users", "the users listed"
        GROUPS = "groups", "members of the groups listed"
        PERMISSION = "permission", "users with the permission"

    namespace = models.CharField(max_length=200, default="/")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    access = models.CharField(max_length=20, choices=Access.choices, default=Access.PUBLIC)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="realtime_rooms")
    groups = models.ManyToManyField("auth.Group", blank=True, related_name="realtime_rooms")
    permission = models.CharField(max_length=200, blank=True, help_text="app_label.codename, e.g. 'chat.moderate'")
    member_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    is_open = models.BooleanField(default=True, help_text="A closed room admits nobody new.")

    class Meta:
        ordering = ["namespace", "name"]
        constraints = [models.UniqueConstraint(fields=["namespace", "name"], name="realtime_room_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.namespace})"

    def clean(self) -> None:
        if self.access == self.Access.PERMISSION and "." not in self.permission:
            raise ValidationError({"permission": "Name a permission as app_label.codename."})
        if not self.namespace.startswith("/"):
            raise ValidationError({"namespace": "Namespaces start with '/'."})


class ServerProcess(models.Model):
    """A serving process, as its registry last reported it (rows of dead processes are reaped)."""

    key = models.CharField(max_length=16, primary_key=True)
    ident = models.CharField("server", max_length=200)
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["host", "pid"]
        verbose_name = "server process"
        verbose_name_plural = "server processes"

    def __str__(self) -> str:
        return self.ident


class Connection(models.Model):
    """One live socket (one client in one namespace) somewhere in the cluster."""

    socket_id = models.CharField(max_length=40, primary_key=True)
    sid = models.CharField("Engine.IO sid", max_length=60)
    namespace = models.CharField(max_length=200, db_index=True)
    # No database constraint: a user deleted while connected must not block the registry's batch.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    username = models.CharField(max_length=150, blank=True)
    token = models.ForeignKey(
        AccessToken, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    transport = models.CharField(max_length=16)
    rooms = models.JSONField(default=list, blank=True)
    address = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    connected_at = models.DateTimeField("connected since")
    last_activity = models.DateTimeField()
    server = models.ForeignKey(ServerProcess, on_delete=models.CASCADE, related_name="connections")

    class Meta:
        ordering = ["-connected_at"]
        # Admin actions on these rows are guarded by the change permission.
        default_permissions = ("view", "change")

    def __str__(self) -> str:
        return f"{self.socket_id} {self.namespace}"


class Sample(models.Model):
    """One process's load over one METRICS_INTERVAL: what the dashboard's chart draws."""

    server = models.CharField(max_length=16)
    at = models.DateTimeField(db_index=True)
    seconds = models.FloatField()
    connections = models.PositiveIntegerField()
    messages_in = models.PositiveIntegerField()
    messages_out = models.PositiveIntegerField()

    class Meta:
        ordering = ["at"]

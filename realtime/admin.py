"""The Django admin for realtime: live connections, tokens, declared rooms, server processes, a dashboard.

The admin only *reads* the registry's tables; everything it *does* to live
sockets goes through ``realtime.cluster`` and ``realtime.broadcast``, so an
action reaches a socket whichever process holds it (the admin may run in any
process, serving or not).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html

from . import cluster, dashboard
from .broadcast import aemit
from .models import AccessToken, Connection, Room, ServerProcess
from .registry import live_horizon

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    # ModelAdmin is generic in django-stubs only: Django's class takes no subscript at run time.
    ConnectionModelAdmin = admin.ModelAdmin[Connection]
    AccessTokenModelAdmin = admin.ModelAdmin[AccessToken]
    RoomModelAdmin = admin.ModelAdmin[Room]
    ServerProcessModelAdmin = admin.ModelAdmin[ServerProcess]

    class _ConnectionCount(TypedDict):
        connection_count: int

    CountedServerProcess = WithAnnotations[ServerProcess, _ConnectionCount]
else:
    ConnectionModelAdmin = AccessTokenModelAdmin = RoomModelAdmin = ServerProcessModelAdmin = admin.ModelAdmin

_T = TypeVar("_T")

# -- forms of the actions that need input -------------------------------------------------------


class EventForm(forms.Form):
    event = forms.CharField(max_length=200, initial="message")
    payload = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text='JSON. An array spreads into several arguments: ["hello", 1]. Empty: no argument.',
    )

    def clean_payload(self) -> list[Any]:
        text = self.cleaned_data["payload"].strip()
        if not text:
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from exc
        return value if isinstance(value, list) else [value]


class RoomNameForm(forms.Form):
    room = forms.CharField(max_length=200)


def _run(*calls: Awaitable[_T]) -> list[_T]:
    """Await cluster operations side by side from the admin's sync view."""
    import asyncio

    async def gather() -> list[_T]:
        return list(await asyncio.gather(*calls))

    return async_to_sync(gather)()


class FormActionMixin:
    """Actions that ask for input first: the changelist posts, we answer with a form, the form posts back."""

    def form_action(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        form_class: type[forms.Form],
        title: str,
        perform: Callable[[QuerySet[Any], dict[str, Any]], str],
    ) -> TemplateResponse | None:
        form = form_class(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            self.message_user(request, perform(queryset, form.cleaned_data), messages.SUCCESS)  # type: ignore[attr-defined]
            return None
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": title,
            "form": form,
            "objects": list(queryset[:50]),
            "count": queryset.count(),
            "action": request.POST["action"],
            "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "opts": self.model._meta,  # type: ignore[attr-defined]
        }
        return TemplateResponse(request, "admin/realtime/action_form.html", context)


# -- live connections ------------------------------------------------------------------------------


def _by_namespace(rows: Iterable[Connection]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        grouped[row.namespace].append(row.socket_id)
    return grouped


@admin.register(Connection)
class ConnectionAdmin(FormActionMixin, ConnectionModelAdmin):
    list_display = [
        "socket_id",
        "namespace",
        "user_link",
        "transport",
        "room_list",
        "address",
        "agent",
        "since",
        "active",
        "server",
    ]
    list_filter = [
        ("namespace", admin.AllValuesFieldListFilter),
        "transport",
        "server",
        ("user", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["socket_id", "sid", "username", "address", "user_agent", "rooms", "namespace"]
    list_select_related = ["server", "user"]
    actions = ["disconnect", "send_event", "join_room", "leave_room"]
    change_list_template = "admin/realtime/connection/change_list.html"
    list_per_page = 100

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connection]:
        return super().get_queryset(request).filter(server__last_seen__gte=live_horizon())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        return False  # rows mirror live sockets; nobody edits them

    def has_delete_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("realtime.change_connection")

    @admin.display(description="user", ordering="username")
    def user_link(self, row: Connection) -> str:
        return row.username or "—"

    @admin.display(description="rooms")
    def room_list(self, row: Connection) -> str:
        return ", ".join(row.rooms) or "—"

    @admin.display(description="connected since", ordering="connected_at")
    def since(self, row: Connection) -> str:
        return _moment(row.connected_at)

    @admin.display(description="last activity", ordering="last_activity")
    def active(self, row: Connection) -> str:
        return _moment(row.last_activity)

    @admin.display(description="user agent", ordering="user_agent")
    def agent(self, row: Connection) -> str:
        return format_html('<span title="{}">{}</span>', row.user_agent, row.user_agent[:40])

    # -- actions --
    @admin.action(description="Disconnect the selected sockets", permissions=["operate"])
    def disconnect(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        rows = list(queryset)
        done = _run(*(cluster.adisconnect_sockets(room=r.socket_id, namespace=r.namespace) for r in rows))
        self.message_user(request, f"Disconnected {sum(done)} of {len(rows)} sockets.", messages.SUCCESS)

    @admin.action(description="Send an event to the selected sockets", permissions=["operate"])
    def send_event(self, request: HttpRequest, queryset: QuerySet[Connection]) -> TemplateResponse | None:
        def perform(rows: QuerySet[Connection], data: dict[str, Any]) -> str:
            grouped = _by_namespace(rows)
            _run(*(aemit(data["event"], *data["payload"], to=ids, namespace=ns) for ns, ids in grouped.items()))
            return f"Sent {data['event']!r} to {sum(map(len, grouped.values()))} sockets."

        return self.form_action(request, queryset, EventForm, "Send an event", perform)

    @admin.action(description="Make the selected sockets join a room", permissions=["operate"])
    def join_room(self, request: HttpRequest, queryset: QuerySet[Connection]) -> TemplateResponse | None:
        def perform(rows: QuerySet[Connection], data: dict[str, Any]) -> str:
            done = _run(*(cluster.asockets_join(data["room"], room=r.socket_id, namespace=r.namespace) for r in rows))
            return f"{sum(done)} sockets joined {data['room']!r}."

        return self.form_action(request, queryset, RoomNameForm, "Join a room", perform)

    @admin.action(description="Make the selected sockets leave a room", permissions=["operate"])
    def leave_room(self, request: HttpRequest, queryset: QuerySet[Connection]) -> TemplateResponse | None:
        def perform(rows: QuerySet[Connection], data: dict[str, Any]) -> str:
            done = _run(*(cluster.asockets_leave(data["room"], room=r.socket_id, namespace=r.namespace) for r in rows))
            return f"{sum(done)} sockets left {data['room']!r}."

        return self.form_action(request, queryset, RoomNameForm, "Leave a room", perform)

    # -- the dashboard --
    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.dashboard_view)
        return [path("dashboard/", view, name="realtime_dashboard"), *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            minutes = int(request.GET.get("minutes", "60"))
        except ValueError:
            minutes = 60
        minutes = minutes if minutes in dashboard.RANGES else 60
        context = {
            **self.admin_site.each_context(request),
            "title": "Realtime dashboard",
            "opts": self.model._meta,
            "totals": dashboard.totals(),
            "charts": dashboard.charts(minutes),
            "minutes": minutes,
            "ranges": dashboard.RANGES,
        }
        return TemplateResponse(request, "admin/realtime/dashboard.html", context)


def _moment(value: datetime) -> str:
    """A time of today as hh:mm:ss (the full date in its tooltip): the columns stay narrow."""
    local = timezone.localtime(value)
    text = f"{local:%H:%M:%S}" if local.date() == timezone.localdate() else f"{local:%Y-%m-%d %H:%M}"
    return format_html('<span title="{}">{}</span>', f"{local:%Y-%m-%d %H:%M:%S %Z}", text)


# -- tokens ------------------------------------------------------------------------------------------


@admin.register(AccessToken)
class AccessTokenAdmin(AccessTokenModelAdmin):
    list_display = ["__str__", "user", "prefix", "status", "created", "expires", "last_used", "namespaces"]
    list_filter = ["revoked", "created", "expires"]
    search_fields = ["name", "prefix", "user__username", "user__email"]
    list_select_related = ["user"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: AccessToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("user", "name", "expires", "namespaces")
        return ("user", "name", "prefix", "created", "expires", "last_used", "revoked", "namespaces")

    def get_readonly_fields(self, request: HttpRequest, obj: AccessToken | None = None) -> list[str]:
        return [] if obj is None else ["user", "prefix", "created", "last_used"]

    @admin.display(description="status")
    def status(self, token: AccessToken) -> str:
        if token.revoked:
            return "revoked"
        return "expired" if token.is_expired() else "active"

    def save_model(self, request: HttpRequest, obj: AccessToken, form: Any, change: bool) -> None:
        if not change:
            request._realtime_token = obj.set_secret()  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: AccessToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """Show the secret once, on this page only: it is stored nowhere, not even in a message."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Token created",
            "opts": self.model._meta,
            "token": obj,
            "secret": request._realtime_token,  # type: ignore[attr-defined]
        }
        response = TemplateResponse(request, "admin/realtime/accesstoken/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected tokens (their sockets are disconnected)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[AccessToken]) -> None:
        tokens = [token for token in queryset if not token.revoked]
        for token in tokens:
            token.revoke()
        self.message_user(request, f"Revoked {len(tokens)} tokens.", messages.SUCCESS)


# -- declared rooms ------------------------------------------------------------------------------------


@admin.register(Room)
class RoomAdmin(FormActionMixin, RoomModelAdmin):
    list_display = ["name", "namespace", "access", "is_open", "member_limit", "description"]
    list_filter = ["namespace", "access", "is_open"]
    search_fields = ["name", "description"]
    filter_horizontal = ["users", "groups"]
    actions = ["broadcast", "remove_everyone", "close"]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        """Live member counts, asked of every process once per page (one request per namespace)."""
        namespaces = sorted(set(Room.objects.values_list("namespace", flat=True)))
        counts = dict(zip(namespaces, _run(*(cluster.arooms(ns) for ns in namespaces)), strict=True))

        @admin.display(description="live members")
        def live_members(room: Room) -> int:
            return counts.get(room.namespace, {}).get(room.name, 0)

        return [*self.list_display[:2], live_members, *self.list_display[2:]]

    @admin.action(description="Broadcast a message to the selected rooms")
    def broadcast(self, request: HttpRequest, queryset: QuerySet[Room]) -> TemplateResponse | None:
        def perform(rooms: QuerySet[Room], data: dict[str, Any]) -> str:
            _run(*(aemit(data["event"], *data["payload"], to=r.name, namespace=r.namespace) for r in rooms))
            return f"Broadcast {data['event']!r} to {len(rooms)} rooms."

        return self.form_action(request, queryset, EventForm, "Broadcast to rooms", perform)

    @admin.action(description="Remove everyone from the selected rooms")
    def remove_everyone(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        removed = _empty(list(queryset))
        self.message_user(request, f"Removed {removed} sockets from {len(queryset)} rooms.", messages.SUCCESS)

    @admin.action(description="Close the selected rooms (no new members; everyone removed)")
    def close(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        rooms = list(queryset)
        for room in rooms:
            room.is_open = False
            room.save(update_fields=["is_open"])
        removed = _empty(rooms)
        self.message_user(request, f"Closed {len(rooms)} rooms; {removed} sockets removed.", messages.SUCCESS)


def _empty(rooms: list[Room]) -> int:
    return sum(_run(*(cluster.asockets_leave(r.name, room=r.name, namespace=r.namespace) for r in rooms)))


# -- server processes --------------------------------------------------------------------------------------


@admin.register(ServerProcess)
class ServerProcessAdmin(ServerProcessModelAdmin):
    list_display = ["ident", "host", "pid", "started", "last_seen", "connection_count"]
    search_fields = ["ident", "host"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ServerProcess]:
        live = super().get_queryset(request).filter(last_seen__gte=live_horizon())
        return live.annotate(connection_count=Count("connections"))

    @admin.display(description="connections", ordering="connection_count")
    def connection_count(self, server: CountedServerProcess) -> int:
        return server.connection_count

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ServerProcess | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ServerProcess | None = None) -> bool:
        return False

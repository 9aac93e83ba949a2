"""``manage.py realtime_emit EVENT JSON --to ROOM --namespace NS``: emit from a shell or a script."""

import json
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.broadcast import emit


class Command(BaseCommand):
    help = "Emit a Socket.IO event to a room, a socket id or a whole namespace, on every server process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event")
        parser.add_argument("payload", nargs="?", default=None, help="JSON; a JSON array spreads into arguments")
        parser.add_argument("--to", action="append", default=[], help="room or socket id (repeatable)")
        parser.add_argument("--except", dest="except_", action="append", default=[], help="room to leave out")
        parser.add_argument("--namespace", default="/")

    def handle(self, *args: Any, **options: Any) -> None:
        layer = get_channel_layer()
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            # the event would stay in this process, which serves no sockets: say so instead of "emitted"
            raise CommandError(
                "realtime_emit needs a channel layer shared with the server processes, such as "
                "channels_redis (see the README's Deploy section); CHANNEL_LAYERS here is "
                f"{'missing' if layer is None else 'the in-memory layer'}, which cannot leave this process, "
                "so no client would receive the event"
            )
        arguments: list[Any] = []
        if options["payload"] is not None:
            try:
                value = json.loads(options["payload"])
            except json.JSONDecodeError as exc:
                raise CommandError(f"payload is not JSON: {exc}") from exc
            arguments = value if isinstance(value, list) else [value]
        emit(
            options["event"],
            *arguments,
            to=options["to"] or None,
            except_=options["except_"] or None,
            namespace=options["namespace"],
        )
        target = ", ".join(options["to"]) or f"all of {options['namespace']}"
        self.stdout.write(f"emitted {options['event']!r} to {target}")

"""The project's Celery app, and an example task that pushes an event to Socket.IO clients.

Run a worker with ``REDIS_URL=redis://... celery -A project worker``; the
broker is CELERY_BROKER_URL, else REDIS_URL. Emitting from a task needs the
channels-redis layer (REDIS_URL): the in-memory layer cannot leave the
process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.conf.broker_url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "memory://"
app.conf.task_ignore_result = True
app.conf.broker_connection_retry_on_startup = True


@app.task(name="project.notify")
def notify(event: str, payload: object, room: str | None = None, namespace: str = "/") -> None:
    """Emit ``event`` with ``payload`` to ``room`` (everyone in ``namespace`` when None)."""
    from realtime import emit  # Celery's Django fixup has set Django up in the worker

    emit(event, payload, to=room, namespace=namespace)

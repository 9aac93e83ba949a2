"""gunicorn settings for realtime's metrics: ``gunicorn -c python:realtime.gunicorn -k uvicorn.workers.UvicornWorker``.

gunicorn's workers share one port, so a Prometheus scrape reaches one of them
at random; prometheus_client's multiprocess mode lets any of them answer for
all, from files the workers keep in ``PROMETHEUS_MULTIPROC_DIR``. It has three
rules, each handled here: the directory is set before a worker imports
prometheus_client (at the top of this module, which gunicorn reads before it
forks or preloads anything), it is emptied when gunicorn starts (files of a
previous run would be added in), and a dead worker's gauges are dropped
(``child_exit``), while its counters stay in the totals, as counters should.

Your own ``gunicorn.conf.py`` can take these hooks: ``from realtime.gunicorn import *``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"

if not os.environ.get(ENV):
    os.environ[ENV] = tempfile.mkdtemp(prefix="realtime-metrics-")

__all__ = ["child_exit", "on_starting"]


def on_starting(server: Any) -> None:
    """Before the first worker: forget what a previous run left in the directory."""
    directory = Path(os.environ[ENV])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its gauges (sessions, sockets) no longer count; its counters still do."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]

"""Debian's Prometheus, started by a test on a free loopback port, scraping the test's server processes.

Like tests/cluster.py's ``RedisServer``: a private instance with its own storage in a
temporary directory, gone when the test is. Tests read what it scraped through the HTTP
query API (``/api/v1/query``), as a Grafana panel or an alert rule would, never by parsing
the text format themselves.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.cluster import ARTIFACTS, free_port

PROMETHEUS = Path(os.environ.get("PROMETHEUS", "/usr/bin/prometheus"))

Result = list[dict[str, Any]]


class PortTaken(RuntimeError):
    """Another process bound the free port before prometheus did."""


class PrometheusError(AssertionError):
    """The query API answered something other than ``status: success``."""


def ensure_prometheus_installed() -> None:
    if not PROMETHEUS.exists():
        raise RuntimeError(
            f"{PROMETHEUS} is missing: the Prometheus tests need Debian's prometheus "
            "(`make prometheus` or .ci/run installs it with apt-get install prometheus)"
        )


def values(result: Result) -> list[float]:
    """The sample values of an instant vector, in the order Prometheus gave them."""
    return [float(sample["value"][1]) for sample in result]


def scalar(result: Result) -> float | None:
    """The one value of a one-element vector (``sum(...)``, ``count(...)``); None when it is empty."""
    if not result:
        return None
    assert len(result) == 1, f"expected one series, got {result}"
    return float(result[0]["value"][1])


def by(label: str, result: Result) -> dict[str, float]:
    """``{label value: sample value}`` of a vector grouped by one label (``sum by (instance) (...)``)."""
    return {sample["metric"].get(label, ""): float(sample["value"][1]) for sample in result}


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


class PrometheusServer:
    """/usr/bin/prometheus scraping ``targets`` (``host:port``) at ``metrics_path`` every ``interval`` seconds.

    The configuration is written as JSON, which is YAML too. Its log goes to a file in
    tests/artifacts (a pipe nobody reads would fill and stall it).
    """

    def __init__(
        self,
        targets: Sequence[str],
        metrics_path: str = "/metrics",
        interval: float = 0.5,
        job: str = "realtime",
    ) -> None:
        ensure_prometheus_installed()
        self.targets = list(targets)
        self.metrics_path = metrics_path
        self.interval = interval
        self.job = job
        self.port = 0
        self.directory: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = ARTIFACTS / f"prometheus-{os.getpid()}-{id(self)}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        every = f"{round(self.interval * 1000)}ms"
        return {
            "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "metrics_path": self.metrics_path,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }

    def start(self, timeout: float = 30, attempts: int = 3) -> PrometheusServer:
        self.directory = Path(tempfile.mkdtemp(prefix="realtime-prometheus-"))
        config = self.directory / "prometheus.yml"
        config.write_text(json.dumps(self.config(), indent=2))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            # free_port() closes the port before prometheus binds it: another process may take it between
            self.port = free_port()
            self._spawn(config)
            try:
                self._wait_ready(timeout)
                return self
            except PortTaken:
                if attempt == attempts - 1:
                    raise
        return self

    def _spawn(self, config: Path) -> None:
        assert self.directory is not None
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    f"--web.console.templates={self.directory}",
                    f"--web.console.libraries={self.directory}",
                ],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                log = self.log()
                if "address already in use" in log:
                    raise PortTaken(self.port)
                raise RuntimeError(f"prometheus exited ({self.process.returncode}); log:\n{log[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready within {timeout} s; log:\n{self.log()[-3000:]}")
            time.sleep(0.05)  # polling /-/ready with a deadline: there is nothing to wait on

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- the HTTP query API ----------------------------------------------------------------------
    def query(self, expr: str, at: float | None = None) -> Result:
        """An instant query (at ``at``, else now): ``/api/v1/query``'s result, raising unless ``status`` is success."""
        fields = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        request = urllib.request.Request(
            f"{self.url}/api/v1/query", data=urllib.parse.urlencode(fields).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:  # 400 bad_data, 422 execution: the body says why
            answer = json.loads(error.read() or b"{}")
        if answer.get("status") != "success":
            raise PrometheusError(f"{expr!r}: {answer.get('errorType')}: {answer.get('error')}")
        data = answer["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def settled(self, expr: str, timeout: float = 10) -> Result:
        """``expr`` at an instant when every target's last scrape succeeded.

        A failed scrape (a busy machine, a scrape timeout of one interval) marks all of that
        target's series stale: a query then would see them gone, and a count or a sum would be
        wrong for a moment. ``up`` and ``expr`` are evaluated at the same timestamp.
        """
        deadline = time.monotonic() + timeout
        while True:
            at = time.time()
            up = self.query("up", at)
            if len(up) == len(self.targets) and all(value == 1 for value in values(up)):
                return self.query(expr, at)
            if time.monotonic() > deadline:
                raise AssertionError(f"targets not all up for {timeout} s: {up}; log:\n{self.log()[-2000:]}")
            time.sleep(self.interval / 5)  # the next scrape is what can change the answer

    def wait_for(self, expr: str, predicate: Callable[[Result], bool], timeout: float = 15) -> Result:
        """Re-query ``expr`` (``settled``) until ``predicate(result)`` holds; fail with the last after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.settled(expr, max(deadline - time.monotonic(), 1))
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr!r} never satisfied the condition in {timeout} s; last result: {result}")
            time.sleep(self.interval / 5)  # the next scrape is what can change the answer

    async def aquery(self, expr: str) -> Result:
        """``settled(expr)`` for async tests: the event loop (and the clients on it) keeps running."""
        return await asyncio.to_thread(self.settled, expr)

    async def await_for(self, expr: str, predicate: Callable[[Result], bool], timeout: float = 15) -> Result:
        """``wait_for`` for async tests."""
        return await asyncio.to_thread(self.wait_for, expr, predicate, timeout)

    # -- stopping --------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

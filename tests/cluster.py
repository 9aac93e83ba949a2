"""A private Redis, several daphne processes sharing it, and a round-robin proxy in front."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.servers import ROOT, ServerProcess

ARTIFACTS = ROOT / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(process: subprocess.Popen[str], needle: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if needle in line:
            return
        if not line and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited ({process.returncode}) before {needle!r}")
    raise RuntimeError(f"{process.args[0]} never printed {needle!r}")


class RedisServer:
    """redis-server on a free loopback port, in memory only; fails loudly when it cannot start."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for_line(self.process, "Ready to accept connections")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered (a hung or blackholed Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class Proxy:
    def __init__(self, backends: list[str]) -> None:
        self.port = free_port()
        self.backends = backends
        self.process: subprocess.Popen[str] | None = None
        # a file, not the pipe read for "listening": lines nobody reads would fill the pipe and block the proxy
        self.log_path = ARTIFACTS / f"proxy-{os.getpid()}-{id(self)}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "proxy.py"), str(self.port), *self.backends],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        wait_for_line(self.process, "listening")
        return self

    def log(self) -> str:
        """What the proxy said on stderr: one line per 502, and any traceback."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


class Cluster:
    def __init__(self, size: int, env: dict[str, str] | None = None) -> None:
        self.redis = RedisServer()
        self.servers: list[ServerProcess] = []
        self.size = size
        self.proxy: Proxy | None = None
        self.extra_env = env or {}

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.redis.url, "CELERY_BROKER_URL": self.redis.url, **self.extra_env}

    def start(self) -> Cluster:
        self.redis.start()
        app = "tests.asgi:application"
        self.servers = [ServerProcess("tests.settings", app=app, env=self.env).start() for _ in range(self.size)]
        self.proxy = Proxy([s.url for s in self.servers]).start()
        for server in self.servers:  # a first request makes each process join the cluster
            urllib.request.urlopen(f"{server.url}/socket.io/?EIO=4&transport=polling", timeout=10).read()
        for server in self.servers:  # all peers have heard each other
            server.wait_for_log(rf"(?s)(peer \S+ joined.*){{{self.size - 1}}}", timeout=15)
        return self

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **self.env}
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def celery_worker(self, log_path: Path) -> subprocess.Popen[bytes]:
        """A real Celery worker process on the cluster's Redis (broker and channel layer)."""
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **self.env}
        with log_path.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "project", "worker", "--pool=solo", "-l", "info"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in a fresh interpreter configured like the servers (Django settings, Redis)."""
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **self.env}
        return subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for server in self.servers:
            server.stop()
        self.redis.stop()


def ensure_redis_installed() -> None:
    if not any((Path(p) / "redis-server").exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        raise RuntimeError("redis-server is not installed: the cluster tests need it (.ci/run installs it with apt)")

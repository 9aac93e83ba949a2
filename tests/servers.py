"""Real server processes for the tests: daphne (or uvicorn) on a loopback socket the test owns.

The test binds and listens on a free port itself and hands the socket to
the server (``--fd``; daphne and uvicorn both take one), so there is no port
race and no readiness polling: connections made before the server is up wait
in the listen backlog.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class ServerProcess:
    def __init__(
        self,
        settings: str,
        app: str = "project.asgi:application",
        log_dir: Path | None = None,
        env: dict[str, str] | None = None,
        asgi_server: str = "daphne",
        netns: tuple[str, str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.asgi_server = asgi_server
        self.app = app
        self.asgi_server = asgi_server
        self.extra_env = env or {}
        self.log_path = (log_dir or ROOT / "tests" / "artifacts") / f"{asgi_server}-{os.getpid()}-{id(self)}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        # (namespace, address, port): daphne runs in that Linux network namespace and binds there itself
        # (tests/hosts.py); its readiness is then the log's "Listening on TCP address".
        self.netns = netns
        self.address = "127.0.0.1" if netns is None else netns[1]

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.address}:{self.port}"

    def start(self) -> ServerProcess:
        if self.netns is not None:
            return self._start_in_namespace(*self.netns)
        listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = listener.getsockname()[1]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": self.settings, "PYTHONUNBUFFERED": "1", **self.extra_env}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self._command(listener.fileno()),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[listener.fileno()],
            )
        listener.close()  # daphne holds its own copy
        return self

    def _start_in_namespace(self, namespace: str, address: str, port: int) -> ServerProcess:
        self.port = port
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": self.settings, "PYTHONUNBUFFERED": "1", **self.extra_env}
        command = ["ip", "netns", "exec", namespace, str(BIN / "daphne"), "-b", address, "-p", str(port), self.app]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def _command(self, fd: int) -> list[str]:
        if self.asgi_server == "daphne":
            return [str(BIN / "daphne"), "--fd", str(fd), self.app]
        if self.asgi_server == "uvicorn":
            # not `uvicorn --fd`: it takes the socket for a Unix one and leaves Nagle on (tests/uvicorn_fd.py)
            return [sys.executable, "-m", "tests.uvicorn_fd", str(fd), self.app]
        raise ValueError(f"unknown ASGI server {self.asgi_server!r}")

    def kill(self) -> None:
        """kill -9: no goodbye to anyone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 5.0, since: int = 0) -> re.Match[str]:
        """Wait until the server's log (from offset ``since``) matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while (match := self._search(pattern, since, deadline)) is None:
            time.sleep(0.02)
        return match

    async def await_log(self, pattern: str, timeout: float = 5.0, since: int = 0) -> re.Match[str]:
        """``wait_for_log`` for async tests: the event loop keeps running while it waits."""
        deadline = time.monotonic() + timeout
        # another process's log file: there is no event to await, so it is read until it matches
        while (match := self._search(pattern, since, deadline)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return match

    def _search(self, pattern: str, since: int, deadline: float) -> re.Match[str] | None:
        match = re.search(pattern, self.log()[since:])
        if match:
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"server log never matched {pattern!r}; log tail:\n{self.log()[-3000:]}")
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"server exited ({self.process.returncode}); log:\n{self.log()[-3000:]}")
        return None

    def rss(self) -> int:
        """The server process's resident memory, in bytes."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]

    def open_fds(self) -> int:
        """How many file descriptors the server process holds now (Linux /proc)."""
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def mark(self) -> int:
        """An offset into the log: pass it as ``since`` to look only at what comes after."""
        return len(self.log())

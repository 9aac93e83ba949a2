"""A brand-new Django site built from the wheel, the way a user following the README builds one.

``Site.create`` builds the sdist and, from it, the wheel of this checkout
(``python -m build --no-isolation``: offline, with the pinned hatchling), makes
an empty virtual environment in a temporary directory far from the checkout,
and runs README steps in it. Installing is fast because the environment gets
no pip of its own: this checkout's pip installs into it (``pip --python``)
from the pip cache, pinned by requirements.txt, without byte-compiling.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.install.readme import Block, commands
from tests.servers import ROOT

BIN = Path(sys.executable).parent
DISTRIBUTION = "django-realtime-socketio"
SUPERUSER = {
    "DJANGO_SUPERUSER_USERNAME": "admin",
    "DJANGO_SUPERUSER_PASSWORD": "admin-pw-5f1c",
    "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
}
# Variables of this test run that must not leak into the user's site.
LEAKY = ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV", "REALTIME_TEST_DB", "PYTHONHOME")


def build_distributions(out: Path) -> tuple[Path, Path]:
    """(sdist, wheel) of this checkout; the wheel is built from the sdist, so the sdist is complete."""
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


class Shell:
    """Runs README command lines in the site: its own environment and working directory."""

    def __init__(self, site: Site, env: dict[str, str], overrides: dict[str, str] | None = None) -> None:
        self.site = site
        self.env = env
        self.cwd = site.root
        self.overrides = overrides or {}
        self.history: list[str] = []  # every README line executed, for the report

    def fork(self, overrides: dict[str, str]) -> Shell:
        """A second shell in the same directory, whose ``export`` lines take ``overrides`` first."""
        shell = Shell(self.site, dict(self.env), overrides)
        shell.cwd = self.cwd
        return shell

    def run_block(self, block: Block) -> None:
        for argv in commands(block):
            started = time.monotonic()
            self.run(argv)
            self.site.timings[" ".join(argv)] = round(time.monotonic() - started, 2)

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str] | None:
        self.history.append(" ".join(argv))
        if argv[0] == "cd":
            self.cwd = (self.cwd / argv[1]).resolve()
            return None
        if argv[0] == "export":
            for assignment in argv[1:]:
                name, _, value = assignment.partition("=")
                self.env[name] = self.overrides.get(name, value)
            return None
        result = subprocess.run(
            self.argv(argv), cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, f"README step {' '.join(argv)!r} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def argv(self, argv: list[str]) -> list[str]:
        """What actually runs for a README line: the site's programs; pip as described above."""
        if argv[:2] == ["pip", "install"]:
            return [
                str(BIN / "pip"), "--python", str(self.site.python), "install", "--quiet", "--no-compile",
                "--constraint", str(self.site.constraints), *map(self.site.wheel_for, argv[2:]),
            ]  # fmt: skip
        if "createsuperuser" in argv:
            self.env.update(SUPERUSER)
            return [*self.resolve(argv), "--noinput"]  # the README's prompt answered by DJANGO_SUPERUSER_*
        return self.resolve(argv)

    def resolve(self, argv: list[str]) -> list[str]:
        program = self.site.venv / "bin" / argv[0]
        assert program.exists(), f"README runs {argv[0]!r}, which the site's virtual environment does not have"
        return [str(program), *argv[1:]]

    def start(self, argv: list[str], log: Path) -> Service:
        self.history.append(" ".join(argv))
        return Service(self.resolve(argv), self.cwd, self.env, log)


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root / "site"
        self.venv = root / "venv"
        self.dist = root / "dist"
        self.logs = root / "logs"
        self.constraints = root / "constraints.txt"
        self.wheel: Path | None = None
        self.sdist: Path | None = None
        self.timings: dict[str, float] = {}

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def create(self) -> Shell:
        """Build the distributions and an empty virtual environment; the README does the rest."""
        for path in (self.root, self.dist, self.logs):
            path.mkdir(parents=True)
        started = time.monotonic()
        self.sdist, self.wheel = build_distributions(self.dist)
        self.timings["build sdist + wheel"] = round(time.monotonic() - started, 2)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(self.venv)], check=True)
        self.timings["venv"] = round(time.monotonic() - started, 2)
        pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line]
        self.constraints.write_text("\n".join(pins) + "\n")
        env = {k: v for k, v in os.environ.items() if k not in LEAKY}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env["PYTHONUNBUFFERED"] = "1"
        return Shell(self, env)

    def wheel_for(self, requirement: str) -> str:
        """``django-realtime-socketio[extra]`` as this checkout's wheel (with the same extras)."""
        match = re.fullmatch(rf"{DISTRIBUTION}(\[[\w,-]+\])?", requirement)
        return f"{DISTRIBUTION}{match.group(1) or ''} @ {self.wheel.as_uri()}" if match and self.wheel else requirement

    def write(self, block: Block) -> Path:
        """A ``write FILE`` block: the whole file."""
        path = self.root / block.target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.code)
        return path

    def merge(self, block: Block) -> Path:
        """A ``merge FILE`` block: each top-level assignment replaces the file's own, or is appended."""
        path = self.root / block.target
        lines = path.read_text().splitlines(keepends=True)
        existing = {name: node for node in ast.parse("".join(lines)).body for name in _assigned(node)}
        appended = []
        replacements = []
        source = block.code.splitlines(keepends=True)
        for node in ast.parse(block.code).body:
            text = "".join(source[node.lineno - 1 : node.end_lineno])
            names = _assigned(node)
            old = next((existing[n] for n in names if n in existing), None)
            if old is None:
                appended.append(text)
            else:
                replacements.append((old.lineno - 1, old.end_lineno, text))
        for start, end, text in sorted(replacements, reverse=True):
            lines[start:end] = [text]
        path.write_text("".join(lines) + "\n" + "\n".join(appended))
        return path


def _assigned(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


class Service:
    """A long-running README command (a server) in its own process group, its output in a log file."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.argv = argv
        self.log_path = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 30, count: int = 1) -> None:
        """Wait until ``pattern`` has appeared ``count`` times in the output (fails if the process dies)."""
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, self.log())) < count:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.argv} exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.argv} never logged {pattern!r}:\n{self.log()[-3000:]}")
            time.sleep(0.05)  # polling another process's log file: there is no event to wait on

    def wait_for_port(self, port: int, timeout: float = 30) -> None:
        """Wait until the server accepts connections on ``port`` (runserver logs nothing when it does)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{self.argv} never listened on {port}:\n{self.log()[-3000:]}") from None
                time.sleep(0.05)  # connection refused: not bound yet, try again

    def stop(self) -> None:
        """SIGTERM to the process group (runserver's autoreloader has a child), then SIGKILL."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def require(program: str, package: str) -> str:
    """The path of ``program``, or a loud failure naming the Debian package that has it."""
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    assert path, f"{program} is not installed: `make test` and .ci/run install Debian's {package} with apt-get"
    return path

"""Build the native scenario programs (tests/clients/{java,go,rust}) once, cached by their sources.

Each program is built into ``tests/clients/.build/`` (git-ignored) and stamped
with a hash of its sources and lock files; a build whose stamp matches is not
redone, so only the first run (or a change to a program or its pins) pays for
compiling. Maven, Go and Cargo fetch only from Maven Central, the Go module
proxy and crates.io, into their usual caches (~/.m2, ~/go/pkg/mod,
~/.cargo/registry), and work offline from those caches afterwards.

``python -m tests.clients.native`` builds every program whose toolchain is
installed (``make clients`` runs it before pytest, so a cold build is not
inside a test); a missing toolchain is skipped with its reason, or is an
error when ``REALTIME_REQUIRE_NATIVE_CLIENTS=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.servers import ROOT

HERE = ROOT / "tests" / "clients"
BUILD = HERE / ".build"
# Cargo's target directory lives outside the checkout, like its registry cache: a fresh clone on the
# same machine (CI's) then compiles only what changed instead of every crate again (76 s cold here).
CARGO_TARGET = Path(os.environ.get("REALTIME_BUILD_CACHE", Path.home() / ".cache" / "realtime-tests")) / "rust-target"
REQUIRE_ENV = "REALTIME_REQUIRE_NATIVE_CLIENTS"


class ToolchainMissing(Exception):
    """The program's compiler or build tool is not installed: the tests skip (or fail in CI)."""


@dataclass(frozen=True)
class Program:
    """One scenario program: where its sources are, what builds it, how to run it."""

    name: str
    source: Path
    tools: tuple[str, ...]

    @property
    def out(self) -> Path:
        return BUILD / self.name

    def sources_hash(self) -> str:
        """Sources, lock files and the build commands (not build output): a change to any means a rebuild."""
        digest = hashlib.sha256(repr(self.commands()).encode())
        for path in sorted(p for p in self.source.rglob("*") if p.is_file() and "target" not in p.parts):
            digest.update(str(path.relative_to(self.source)).encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def missing_tools(self) -> list[str]:
        return [tool for tool in self.tools if shutil.which(tool) is None]

    def build(self) -> None:
        """Build unless the stamp says these sources were built already."""
        if missing := self.missing_tools():
            raise ToolchainMissing(f"{self.name}: {', '.join(missing)} not installed")
        stamp = self.out / "stamp"
        key = self.sources_hash()
        if stamp.exists() and stamp.read_text() == key:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        log = self.out / "build.log"
        started = time.monotonic()
        with log.open("w") as out:
            for command in self.commands():
                result = subprocess.run(command, cwd=self.source, stdout=out, stderr=subprocess.STDOUT, check=False)
                if result.returncode != 0:
                    raise RuntimeError(f"{self.name}: {' '.join(command)} failed; {log}:\n{log.read_text()[-4000:]}")
        stamp.write_text(key)
        print(f"built {self.name} in {time.monotonic() - started:.1f} s", file=sys.stderr)

    def commands(self) -> list[list[str]]:
        raise NotImplementedError

    def command(self, mode: str | None = None) -> list[str]:
        raise NotImplementedError


# A scenario program lives ~15 s: the JIT's optimising tier (C2) and a parallel collector cost it more
# CPU than they save, on cores it shares with the servers and the other programs (measured here: a
# third less CPU, and a first connection ~30% sooner). Ignored by a JVM that does not know them.
JVM_OPTIONS = ("-XX:+IgnoreUnrecognizedVMOptions", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


@dataclass(frozen=True)
class Java(Program):
    """socket.io-client-java at one version of its 2.x line (a Maven profile in pom.xml)."""

    profile: str = ""

    def commands(self) -> list[list[str]]:
        return [
            [
                "mvn",
                "-B",
                "-q",
                f"-P{self.profile}",
                f"-Drt.build.dir={self.out / 'maven'}",
                "compile",
                "dependency:build-classpath",
                f"-Dmdep.outputFile={self.out / 'classpath.txt'}",
            ]
        ]

    def command(self, mode: str | None = None) -> list[str]:
        classpath = f"{self.out / 'maven' / 'classes'}:{(self.out / 'classpath.txt').read_text().strip()}"
        return ["java", *JVM_OPTIONS, "-cp", classpath, "realtime.scenarios.Main"]


@dataclass(frozen=True)
class Go(Program):
    def commands(self) -> list[list[str]]:
        return [["go", "build", "-mod=readonly", "-o", str(self.out / "scenarios"), "."]]

    def command(self, mode: str | None = None) -> list[str]:
        return [str(self.out / "scenarios")]


@dataclass(frozen=True)
class Rust(Program):
    """One crate, one binary, both rust_socketio clients (``--mode async`` or ``--mode sync``)."""

    def commands(self) -> list[list[str]]:
        built = CARGO_TARGET / "debug" / "realtime-scenarios"
        return [
            ["cargo", "build", "--locked", "--target-dir", str(CARGO_TARGET), "--bin", "realtime-scenarios"],
            # a copy of its own: another checkout's build in the shared target directory cannot change it
            ["cp", str(built), str(self.out / "realtime-scenarios")],
        ]

    def command(self, mode: str | None = None) -> list[str]:
        return [str(self.out / "realtime-scenarios"), "--mode", mode or "async"]


PROGRAMS: dict[str, Program] = {
    "java-2.0.1": Java("java-2.0.1", HERE / "java", ("mvn", "java"), profile="socketio-2.0"),
    "java-2.1.2": Java("java-2.1.2", HERE / "java", ("mvn", "java"), profile="socketio-2.1"),
    "go": Go("go", HERE / "go", ("go",)),
    "rust": Rust("rust", HERE / "rust", ("cargo",)),
}

# client name -> (program, mode): what a test row runs
CLIENTS: dict[str, tuple[str, str | None]] = {
    "java-2.0.1": ("java-2.0.1", None),
    "java-2.1.2": ("java-2.1.2", None),
    "go": ("go", None),
    "rust-async": ("rust", "async"),
    "rust-sync": ("rust", "sync"),
}


def required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def main() -> int:
    """Build everything buildable; exit 1 on a failed build, or on a missing toolchain when required."""
    status = 0
    for program in PROGRAMS.values():
        try:
            program.build()
        except ToolchainMissing as exc:
            print(f"clients: skipped {exc}", file=sys.stderr)
            if required():
                print(f"clients: {REQUIRE_ENV}=1, so a missing toolchain is an error", file=sys.stderr)
                status = 1
        except RuntimeError as exc:
            print(f"clients: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())

"""ARCHITECTURE.md: "the runtime never touches the ORM" — checked on the source.

The runtime modules may not import the Django glue (models, registry,
receivers, admin, dashboard) at module level. auth.py and policy.py read
tokens and declared rooms, and do so inside the functions that need them, so
that importing the runtime (a Celery worker emitting, a management command)
loads no model.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "realtime"
RUNTIME = [
    "sessions.py",
    "rooms.py",
    "broadcast.py",
    "member.py",
    "runtime.py",
    "relays.py",
    "exchange.py",
    "server.py",
    "namespaces.py",
    "auth.py",
    "policy.py",
    "cluster.py",
    "handlers.py",
    "routing.py",
    "conf.py",
    "checks.py",
    "signals.py",
    "exceptions.py",
    "tokens.py",
    "logs.py",
    "security.py",
    "metrics.py",
    "tracing.py",
    "proxies.py",
    "prometheus.py",
]
GLUE = {"models", "registry", "receivers", "admin", "dashboard"}


def module_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:  # top-level statements only: lazy imports are allowed
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names.add(module.split(".")[0] if node.level == 1 else module)
            if node.level == 1 and not module:
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_runtime_imports_no_glue_at_module_level():
    for name in RUNTIME:
        found = module_level_imports(ROOT / name) & (GLUE | {f"realtime.{g}" for g in GLUE})
        assert not found, f"{name} imports {found} at module level"

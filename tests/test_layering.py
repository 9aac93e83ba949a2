"""The dependency rules of ARCHITECTURE.md, checked on the source."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "realtime"
FORBIDDEN_IN_PROTOCOL = {"asyncio", "time", "random", "secrets", "django", "channels", "asgiref", "daphne"}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_protocol_core_imports_only_the_standard_library():
    for path in (ROOT / "protocol").rglob("*.py"):
        found = imports(path)
        assert not found & FORBIDDEN_IN_PROTOCOL, f"{path.name} imports {found & FORBIDDEN_IN_PROTOCOL}"
        outside = {name for name in found if name not in sys.stdlib_module_names and name != "__future__"}
        assert not outside, f"{path.name} imports non-stdlib {outside}"


def test_only_consumers_touch_asgi_scopes():
    for path in ROOT.rglob("*.py"):
        if "consumers" in path.parts or path.name == "sessions.py":
            continue
        assert "scope[" not in path.read_text(), f"{path.relative_to(ROOT)} reads an ASGI scope"

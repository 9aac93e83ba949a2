"""The README's executable steps: fenced blocks tagged with an HTML comment.

``<!-- guide:run -->`` before a fenced block makes it a step of the section
*Add realtime to your Django site*, ``<!-- deploy:nginx -->`` one of *Deploy*.
The comment names what the block is (``run``, ``write FILE``, ``merge FILE``,
``serve``, ...); the tests execute the blocks as they are, so a README that
drifts from the code fails the suite instead of misleading a reader.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from tests.servers import ROOT

README = ROOT / "README.md"

TAGGED = re.compile(r"<!-- (guide|deploy):([a-z-]+)(?: (\S+))? -->\n```[a-z]*\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    section: str  # "guide" or "deploy"
    kind: str  # "run", "write", "merge", "serve", ...
    target: str | None  # the file a write/merge block is for
    code: str


def blocks(section: str, kind: str | None = None) -> list[Block]:
    """The tagged blocks of ``section`` (of one ``kind``, if given), in README order."""
    found = [Block(*match.groups()) for match in TAGGED.finditer(README.read_text())]
    chosen = [b for b in found if b.section == section and (kind is None or b.kind == kind)]
    assert chosen, f"README.md has no <!-- {section}:{kind or '...'} --> block"
    return chosen


def commands(block: Block) -> list[list[str]]:
    """A shell block's commands, one per line, split as the shell would (comments dropped)."""
    return [argv for line in block.code.splitlines() if (argv := shlex.split(line, comments=True))]

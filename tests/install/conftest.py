"""One site per test run, built from the wheel by the README's guide, shared by the guide and deploy tests."""

from __future__ import annotations

import json

import pytest

from tests.install.readme import blocks
from tests.install.site import Shell, Site
from tests.servers import ROOT


def apply_steps(site: Site, shell: Shell, section: str, kinds: set[str]) -> None:
    """Execute ``section``'s blocks of ``kinds`` in README order."""
    for block in blocks(section):
        if block.kind not in kinds:
            continue
        if block.kind == "run":
            shell.run_block(block)
        elif block.kind == "write":
            site.write(block)
            shell.history.append(f"write {block.target}")
        elif block.kind == "merge":
            site.merge(block)
            shell.history.append(f"merge into {block.target}")


@pytest.fixture(scope="session")
def guide_site(tmp_path_factory) -> tuple[Site, Shell]:
    """The wheel in a fresh virtual environment, and steps 1-6 of the guide applied to a new site."""
    site = Site(tmp_path_factory.mktemp("guide"))
    shell = site.create()
    apply_steps(site, shell, "guide", {"run", "write", "merge"})
    yield site, shell
    # how long the fresh environment took, step by step (kept with the run's other artefacts)
    report = ROOT / "tests" / "artifacts" / "install-timings.json"
    report.write_text(json.dumps({"timings": site.timings, "steps": shell.history}, indent=2))

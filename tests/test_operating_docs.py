"""README's Operating section says what the code does: every metric, every refusal reason, every default."""

import re
from pathlib import Path

from realtime.conf import DEFAULTS
from realtime.metrics import CATALOGUE, REFUSAL_REASONS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n{title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def test_every_metric_is_documented_with_its_type_and_labels():
    operating = section("## Operating")
    rows = dict(re.findall(r"^\| `(realtime_[a-z_]+)` \| (.+) \|$", operating, re.MULTILINE))
    assert set(rows) == {spec.name for spec in CATALOGUE}
    for spec in CATALOGUE:
        kind, labels, _ = rows[spec.name].split(" | ", 2)
        assert kind == spec.kind, spec.name
        assert re.findall(r"`([a-z_]+)`", labels) == list(spec.labels), spec.name


def test_every_refusal_reason_is_documented():
    operating = section("## Operating")
    documented = re.findall(r"^\| `([a-z_]+)` \| (?!gauge|counter|histogram)", operating, re.MULTILINE)
    assert documented == list(REFUSAL_REASONS)


def test_the_settings_block_shows_the_defaults():
    intro = "Everything lives in one optional dict; these are the defaults:"
    block = re.search(re.escape(intro) + r"\n\n```python\n(.*?)```", README, re.S)
    shown = eval(block.group(1).split("=", 1)[1], {"__builtins__": {}})  # our own README: literals and products
    for key, value in shown.items():
        assert DEFAULTS[key] == value, key
    operating = {"METRICS", "METRICS_PATH", "METRICS_ALLOWED_IPS", "METRICS_FLUSH_INTERVAL", "LIVENESS_PATH",
                 "READINESS_PATH", "READINESS_REQUIRES_LAYER", "TRACING"}  # fmt: skip
    assert operating <= set(shown)
    limits = section("## Security and limits")
    assert f"| `MAX_CONNECTIONS_PER_IP` | {DEFAULTS['MAX_CONNECTIONS_PER_IP']:,} |" in limits
    assert f'| `HANDSHAKE_RATE_PER_IP` | `"{DEFAULTS["HANDSHAKE_RATE_PER_IP"]}"` |' in limits

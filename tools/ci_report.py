"""Print the timing table of a tox run from its ``--result-json`` file.

    python tools/ci_report.py .tox/ci-result.json [WALL_SECONDS]

One row per environment, slowest first: its result, its wall time (setup and
commands), and the closing line of its test runner (``N passed …``), so a CI log shows
what ran and where the time went even when ``tox p`` kept the output to itself.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

_CLOSING = re.compile(r"^=+ (.*\d+ (passed|failed|error|errors|skipped).*) =+$")


def _closing_line(env: dict[str, Any]) -> str:
    found = ""
    for command in env.get("test", []):
        for line in str(command.get("output", "")).splitlines():
            match = _CLOSING.match(line.strip())
            if match:
                found = match.group(1)
    return found


def _seconds(env: dict[str, Any]) -> float:
    steps = [*env.get("setup", []), *env.get("test", [])]
    return sum(float(step.get("elapsed", 0.0)) for step in steps)


def main(argv: list[str]) -> int:
    if not argv or not Path(argv[0]).exists():
        print("ci_report: no tox result file", file=sys.stderr)
        return 1
    report = json.loads(Path(argv[0]).read_text())
    rows = []
    for name, env in report.get("testenvs", {}).items():
        result = env.get("result", {})
        if not result:
            continue
        status = "skipped" if result.get("skipped") else ("ok" if result.get("success") else "FAIL")
        rows.append((_seconds(env), name, status, _closing_line(env)))
    rows.sort(reverse=True)
    width = max((len(name) for _, name, _, _ in rows), default=3)
    print(f"{'env':<{width}}  {'result':<7} {'seconds':>8}  tests")
    for seconds, name, status, closing in rows:
        print(f"{name:<{width}}  {status:<7} {seconds:>8.1f}  {closing}")
    total = sum(seconds for seconds, *_ in rows)
    print(f"{'sum':<{width}}  {'':<7} {total:>8.1f}")
    if len(argv) > 1:
        print(f"{'wall':<{width}}  {'':<7} {float(argv[1]):>8.1f}")
    counts = {kind: 0 for kind in ("passed", "failed", "skipped")}
    for *_, closing in rows:
        for number, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", closing):
            kind = "failed" if kind.startswith("error") else kind
            counts[kind] += int(number)
    # The one closing line over every environment's test runner.
    passed, failed, skipped = counts["passed"], counts["failed"], counts["skipped"]
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

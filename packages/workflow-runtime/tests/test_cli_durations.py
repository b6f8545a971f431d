"""Durations on the command line (``workflow worker --retention 7d``)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from workflow.runtime.cli.durations import DURATION


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("1.5m", 90.0),
        ("12h", 43_200.0),
        ("7D", 604_800.0),
        ("2w", 1_209_600.0),
    ],
)
def test_a_duration_is_read_in_seconds(text: str, seconds: float) -> None:
    assert DURATION.convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["", "7x", "-1d", "1e3", "d", "1 d 2h", "nan", "inf"])
def test_anything_else_is_a_usage_error_naming_the_forms(text: str) -> None:
    @click.command()
    @click.option("--retention", type=DURATION)
    def command(retention: float | None) -> None:
        raise AssertionError("not reached")

    result = CliRunner().invoke(command, ["--retention", text])
    assert result.exit_code == 2
    assert "is not a duration" in result.output
    assert "7d" in result.output

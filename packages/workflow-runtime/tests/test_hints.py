"""Commands printed for the user to paste into a shell are quoted."""

from __future__ import annotations

import shlex

from workflow.runtime.hints import shell_command


def test_a_url_with_an_ampersand_pastes_as_one_argument() -> None:
    url = "postgresql://app@db/app?schema=nc3&table_prefix=x_"
    command = shell_command("workflow", "migrate", "upgrade", "--url", url)
    assert command == f"workflow migrate upgrade --url '{url}'"
    assert shlex.split(command) == ["workflow", "migrate", "upgrade", "--url", url]


def test_plain_arguments_stay_unquoted_and_quotes_are_escaped() -> None:
    assert shell_command("workflow", "runs", "show", "run-1") == "workflow runs show run-1"
    assert shlex.split(shell_command("workflow", "signal", "it's", "a b")) == [
        "workflow",
        "signal",
        "it's",
        "a b",
    ]

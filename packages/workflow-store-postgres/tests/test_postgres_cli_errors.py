"""The `workflow` command against a server that is not there: one line, no traceback."""

from __future__ import annotations

import pytest

from workflow.runtime.cli import main

UNREACHABLE = "postgresql://root@127.0.0.1:1/x"
"""Port 1: nothing listens there, so the connection is refused at once."""


@pytest.mark.parametrize("args", [("runs", "list"), ("runs", "show", "r"), ("schedules", "list")])
def test_an_unreachable_server_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*args, "--url", UNREACHABLE])
    out, err = capsys.readouterr()
    assert exited.value.code == 1
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("Error: StoreUnavailableError: ")
    assert "retryable" in err
    assert "Traceback" not in err

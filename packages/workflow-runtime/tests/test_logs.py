"""The worker's log configuration: in JSON mode every line is a JSON object, a
library's records and Python warnings included."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator

import pytest

from workflow.runtime.cli.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("workflow")
    saved = (root.handlers[:], root.level, ours.handlers[:], ours.level, ours.propagate)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers[:], root.level = saved[0], saved[1]
        ours.handlers[:], ours.level, ours.propagate = saved[2], saved[3], saved[4]


@pytest.mark.usefixtures("restore_logging")
def test_json_mode_renders_every_logger_and_warnings_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    logging.getLogger("workflow.runtime").info("ours", extra={"run_id": "r1"})
    logging.getLogger("psycopg").warning("query cancellation failed: %s", "timeout")
    logging.getLogger("psycopg").info("below WARNING: not shown for a library")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("something deprecated", DeprecationWarning, stacklevel=1)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("workflow.runtime", "INFO"),
        ("psycopg", "WARNING"),
        ("py.warnings", "WARNING"),
    ]
    assert lines[0]["run_id"] == "r1"
    assert lines[1]["msg"] == "query cancellation failed: timeout"
    assert "something deprecated" in lines[2]["msg"]


@pytest.mark.usefixtures("restore_logging")
def test_debug_level_is_for_our_loggers_only(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", "text")
    logging.getLogger("workflow.runtime").debug("ours at debug")
    logging.getLogger("psycopg.pool").debug("a library's debug chatter")
    err = capsys.readouterr().err
    assert "ours at debug" in err
    assert "chatter" not in err

import contextvars
from pathlib import Path

from workflow.store.sqlite import SQLiteStore


async def test_an_operation_closed_outside_the_context_it_ran_in_ends_quietly(
    tmp_path: Path,
) -> None:
    # A coroutine abandoned mid-call (its loop torn down) is closed later by the garbage
    # collector, in whatever context that runs: its deadline must not be reset there.
    store = SQLiteStore.from_path(tmp_path / "wf.db")
    await store.create_schema()
    try:
        call = store.load_run("absent")
        contextvars.copy_context().run(call.send, None)  # suspended on its thread hop
        call.close()  # here, in another context: no ValueError
    finally:
        await store.close()

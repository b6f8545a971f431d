"""Contract cases: listing and reading (list_runs, get_timeline, read_events).

``list_runs`` goes newest first by ``(created_at, run_id)`` and pages with a keyset
cursor: the next page holds rows strictly below the last row's key, so paging is
stable under concurrent inserts and deletes.
"""

from __future__ import annotations

import pytest

from workflow.runtime import Claimed, ExecutionStore, Page, Run, RunStatus, StoredEvent, Timeline

from ..support import LEASE_MS, T0, create, event, started
from .runs import ALL_STATUSES, make_run


def ids(page: Page) -> list[str]:
    return [run.run_id for run in page.items]


def key(run: Run) -> tuple[int, str]:
    return (run.created_at, run.run_id)


async def collect(
    store: ExecutionStore,
    limit: int,
    *,
    workflow_id: str | None = None,
    status: RunStatus | set[RunStatus] | None = None,
    cursor: str | None = None,
) -> tuple[list[Run], list[int]]:
    """Page through ``list_runs`` (from ``cursor``) to the end; returns the runs and the
    page sizes."""
    runs: list[Run] = []
    sizes: list[int] = []
    for _ in range(1000):
        page = await store.list_runs(
            workflow_id=workflow_id, status=status, limit=limit, cursor=cursor
        )
        runs.extend(page.items)
        sizes.append(len(page.items))
        if page.next_cursor is None:
            return runs, sizes
        assert page.items, "a page with a next_cursor must not be empty"
        cursor = page.next_cursor
    raise AssertionError("list_runs never returned next_cursor=None")


# (run_id, created_at): ties on created_at and ids in every order, so a store must sort
# by the full key. Newest first: by created_at descending, then run_id descending.
SEEDED: list[tuple[str, int]] = [
    ("m", T0 + 1),
    ("b", T0 + 2),
    ("z", T0 + 2),
    ("a", T0 + 3),
    ("B", T0 + 2),
    ("k", T0),
    ("c", T0 + 2),
]
SEEDED_ORDER = ["a", "z", "c", "b", "B", "m", "k"]


async def seed(store: ExecutionStore) -> None:
    for run_id, created_at in SEEDED:
        await create(store, run_id, now=created_at)


class ListingCases:
    # -- list_runs: ordering -------------------------------------------------------------
    async def test_list_runs_on_empty_store_returns_empty_last_page(
        self, store: ExecutionStore
    ) -> None:
        page = await store.list_runs()
        assert page.items == []
        assert page.next_cursor is None

    async def test_list_runs_orders_newest_first_by_created_at(self, store: ExecutionStore) -> None:
        await create(store, "r1", now=T0 + 10)
        await create(store, "r3", now=T0 + 30)
        await create(store, "r2", now=T0 + 20)
        page = await store.list_runs()
        assert ids(page) == ["r3", "r2", "r1"]
        assert page.next_cursor is None

    async def test_list_runs_breaks_created_at_ties_by_run_id_descending(
        self, store: ExecutionStore
    ) -> None:
        # Code-point order: "B" < "a" < "b" < "c" < "é".
        for run_id in ["b", "\u00e9", "a", "c", "B"]:
            await create(store, run_id, now=T0)
        page = await store.list_runs()
        assert ids(page) == ["\u00e9", "c", "b", "a", "B"]

    async def test_list_runs_orders_by_the_full_key(self, store: ExecutionStore) -> None:
        await seed(store)
        page = await store.list_runs(limit=1000)
        assert ids(page) == SEEDED_ORDER
        assert page.next_cursor is None

    async def test_list_runs_ignores_updated_at_for_ordering(self, store: ExecutionStore) -> None:
        await create(store, "old", now=T0)
        await create(store, "new", now=T0 + 10)
        # The old run changes status later; it stays where its created_at puts it.
        claim = await store.claim_run("old", "worker-a", LEASE_MS, T0 + 100)
        assert isinstance(claim, Claimed)
        assert ids(await store.list_runs()) == ["new", "old"]

    async def test_list_runs_items_equal_load_run(self, store: ExecutionStore) -> None:
        await make_run(store, RunStatus.PAUSED, "p", created_at=T0, at=T0 + 5)
        await make_run(store, RunStatus.FINISHED, "f", created_at=T0 + 1, at=T0 + 6)
        page = await store.list_runs()
        assert page.items == [await store.load_run("f"), await store.load_run("p")]

    # -- list_runs: filters --------------------------------------------------------------
    async def test_list_runs_filters_by_workflow_id(self, store: ExecutionStore) -> None:
        await create(store, "a1", workflow_id="alpha", now=T0)
        await create(store, "b1", workflow_id="beta", now=T0 + 1)
        await create(store, "a2", workflow_id="alpha", now=T0 + 2)
        await create(store, "a3", workflow_id="Alpha", now=T0 + 3)
        assert ids(await store.list_runs(workflow_id="alpha")) == ["a2", "a1"]
        assert ids(await store.list_runs(workflow_id="beta")) == ["b1"]
        assert ids(await store.list_runs(workflow_id="Alpha")) == ["a3"]
        empty = await store.list_runs(workflow_id="gamma")
        assert empty.items == []
        assert empty.next_cursor is None

    @pytest.mark.parametrize("status", ALL_STATUSES)
    async def test_list_runs_filters_by_a_single_status(
        self, store: ExecutionStore, status: RunStatus
    ) -> None:
        for i, each in enumerate(ALL_STATUSES):
            await make_run(store, each, f"run-{each.value}", created_at=T0 + i)
        page = await store.list_runs(status=status)
        assert ids(page) == [f"run-{status.value}"]
        assert page.items[0].status is status
        assert page.next_cursor is None

    async def test_list_runs_filters_by_a_set_of_statuses(self, store: ExecutionStore) -> None:
        for i, each in enumerate(ALL_STATUSES):
            await make_run(store, each, f"run-{each.value}", created_at=T0 + i)
        live = await store.list_runs(status={RunStatus.QUEUED, RunStatus.PAUSED})
        assert ids(live) == ["run-paused", "run-queued"]
        ended = await store.list_runs(
            status=[RunStatus.FINISHED, RunStatus.ERRORED, RunStatus.CANCELLED]
        )
        assert ids(ended) == ["run-cancelled", "run-errored", "run-finished"]
        everything = await store.list_runs(status=set(ALL_STATUSES))
        assert len(everything.items) == 6

    async def test_list_runs_combines_workflow_and_status_filters(
        self, store: ExecutionStore
    ) -> None:
        await make_run(store, RunStatus.QUEUED, "a-queued", workflow_id="alpha", created_at=T0)
        await make_run(store, RunStatus.PAUSED, "a-paused", workflow_id="alpha", created_at=T0 + 1)
        await make_run(store, RunStatus.QUEUED, "b-queued", workflow_id="beta", created_at=T0 + 2)
        await make_run(store, RunStatus.FINISHED, "a-done", workflow_id="alpha", created_at=T0 + 3)
        page = await store.list_runs(workflow_id="alpha", status=RunStatus.QUEUED)
        assert ids(page) == ["a-queued"]
        page = await store.list_runs(
            workflow_id="alpha", status={RunStatus.QUEUED, RunStatus.FINISHED}
        )
        assert ids(page) == ["a-done", "a-queued"]
        page = await store.list_runs(workflow_id="beta", status=RunStatus.PAUSED)
        assert page.items == []
        assert page.next_cursor is None

    async def test_list_runs_filter_follows_status_changes(self, store: ExecutionStore) -> None:
        await create(store, "run-1")
        assert ids(await store.list_runs(status=RunStatus.QUEUED)) == ["run-1"]
        await started(store, "run-2", now=T0 + 1)
        assert ids(await store.list_runs(status=RunStatus.QUEUED)) == ["run-1"]
        assert ids(await store.list_runs(status=RunStatus.RUNNING)) == ["run-2"]

    # -- list_runs: paging ---------------------------------------------------------------
    @pytest.mark.parametrize("limit", [1, 2, 3, 7, 1000])
    async def test_list_runs_paging_collects_every_run_exactly_once(
        self, store: ExecutionStore, limit: int
    ) -> None:
        await seed(store)
        runs, sizes = await collect(store, limit)
        assert [run.run_id for run in runs] == SEEDED_ORDER
        expected_pages = -(-len(SEEDED) // limit)
        assert len(sizes) == expected_pages
        assert all(size == limit for size in sizes[:-1])

    async def test_list_runs_full_page_with_more_rows_has_a_cursor(
        self, store: ExecutionStore
    ) -> None:
        for i in range(4):
            await create(store, f"run-{i}", now=T0 + i)
        first = await store.list_runs(limit=2)
        assert ids(first) == ["run-3", "run-2"]
        assert first.next_cursor is not None
        second = await store.list_runs(limit=2, cursor=first.next_cursor)
        assert ids(second) == ["run-1", "run-0"]
        # Exactly full and nothing after it: the last page.
        assert second.next_cursor is None

    async def test_list_runs_page_exactly_full_without_more_rows_has_no_cursor(
        self, store: ExecutionStore
    ) -> None:
        for i in range(3):
            await create(store, f"run-{i}", now=T0)
        page = await store.list_runs(limit=3)
        assert ids(page) == ["run-2", "run-1", "run-0"]
        assert page.next_cursor is None
        single = await store.list_runs(limit=1)
        assert single.next_cursor is not None

    async def test_list_runs_short_last_page_has_no_cursor(self, store: ExecutionStore) -> None:
        for i in range(5):
            await create(store, f"run-{i}", now=T0 + i)
        first = await store.list_runs(limit=3)
        assert first.next_cursor is not None
        last = await store.list_runs(limit=3, cursor=first.next_cursor)
        assert ids(last) == ["run-1", "run-0"]
        assert last.next_cursor is None

    async def test_list_runs_paging_keeps_the_filters(self, store: ExecutionStore) -> None:
        for i in range(6):
            workflow_id = "alpha" if i % 2 == 0 else "beta"
            await make_run(
                store,
                RunStatus.QUEUED if i < 4 else RunStatus.CANCELLED,
                f"run-{i}",
                workflow_id=workflow_id,
                created_at=T0 + i,
            )
        runs, _ = await collect(store, 1, workflow_id="alpha")
        assert [run.run_id for run in runs] == ["run-4", "run-2", "run-0"]
        runs, _ = await collect(store, 1, workflow_id="alpha", status=RunStatus.QUEUED)
        assert [run.run_id for run in runs] == ["run-2", "run-0"]
        runs, _ = await collect(store, 2, status={RunStatus.QUEUED})
        assert [run.run_id for run in runs] == ["run-3", "run-2", "run-1", "run-0"]

    async def test_list_runs_cursor_is_stable_under_concurrent_inserts(
        self, store: ExecutionStore
    ) -> None:
        await seed(store)
        existing = set(SEEDED_ORDER)
        seen: list[Run] = []
        cursor: str | None = None
        inserted = 0
        for _ in range(100):
            page = await store.list_runs(limit=2, cursor=cursor)
            seen.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            # Between page fetches: a newer run, plus runs sharing the created_at of the
            # page's last row with ids on both sides of its id.
            last = page.items[-1]
            below = last.run_id[:-1] + chr(ord(last.run_id[-1]) - 1) + "~"
            for new_id, created_at in [
                (f"new-{inserted}", T0 + 1000 + inserted),
                (f"{last.run_id}+", last.created_at),
                (below, last.created_at),
            ]:
                if await store.load_run(new_id) is None:
                    await create(store, new_id, now=created_at)
                    inserted += 1
        else:
            raise AssertionError("paging did not end")
        assert inserted > 0
        seen_ids = [run.run_id for run in seen]
        assert len(seen_ids) == len(set(seen_ids)), f"a row was repeated: {seen_ids}"
        assert existing <= set(seen_ids), f"rows were skipped: {existing - set(seen_ids)}"
        assert [run.run_id for run in seen if run.run_id in existing] == SEEDED_ORDER
        keys = [key(run) for run in seen]
        assert keys == sorted(keys, reverse=True)

    async def test_list_runs_cursor_is_stable_when_rows_before_it_are_deleted(
        self, store: ExecutionStore
    ) -> None:
        await seed(store)
        first = await store.list_runs(limit=3)
        assert ids(first) == SEEDED_ORDER[:3]
        assert first.next_cursor is not None
        # Delete rows already seen, including the cursor's own row: the keyset still
        # continues right after it.
        for run_id in SEEDED_ORDER[:3]:
            assert await store.delete_run(run_id) is True
        rest, _ = await collect(store, 3, cursor=first.next_cursor)
        assert [run.run_id for run in rest] == SEEDED_ORDER[3:]

    async def test_list_runs_cursor_skips_rows_inserted_above_it(
        self, store: ExecutionStore
    ) -> None:
        for i in range(4):
            await create(store, f"run-{i}", now=T0 + i)
        first = await store.list_runs(limit=2)
        assert first.next_cursor is not None
        await create(store, "run-9", now=T0 + 100)
        await create(store, "run-2z", now=T0 + 2)
        second = await store.list_runs(limit=2, cursor=first.next_cursor)
        assert ids(second) == ["run-1", "run-0"]
        assert second.next_cursor is None

    # -- get_timeline --------------------------------------------------------------------
    async def test_get_timeline_unknown_run_returns_none(self, store: ExecutionStore) -> None:
        assert await store.get_timeline("missing") is None
        await create(store, "run-1")
        assert await store.get_timeline("run-2") is None

    async def test_get_timeline_of_a_new_run_has_no_events(self, store: ExecutionStore) -> None:
        run = await create(store, "run-1")
        assert await store.get_timeline("run-1") == Timeline(run, [])

    async def test_get_timeline_returns_run_and_events(self, store: ExecutionStore) -> None:
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(0), event(1, "s1")], T0 + 1)
        await store.append_events("run-1", claim.lease, 2, [event(2)], T0 + 2)
        timeline = await store.get_timeline("run-1")
        assert timeline is not None
        assert timeline.run == await store.load_run("run-1")
        assert timeline.run.next_event_index == 3
        assert timeline.events == [
            StoredEvent("run-1", 0, "CUSTOM", None, {"n": 0}, T0 + 1),
            StoredEvent("run-1", 1, "CUSTOM", "s1", {"n": 1}, T0 + 1),
            StoredEvent("run-1", 2, "CUSTOM", None, {"n": 2}, T0 + 2),
        ]

    @pytest.mark.parametrize(
        ("from_index", "limit", "expected"),
        [
            (0, None, [0, 1, 2, 3, 4]),
            (2, None, [2, 3, 4]),
            (0, 2, [0, 1]),
            (1, 3, [1, 2, 3]),
            (4, 10, [4]),
            (5, None, []),
            (9, 1, []),
        ],
    )
    async def test_get_timeline_slices_events_by_from_index_and_limit(
        self, store: ExecutionStore, from_index: int, limit: int | None, expected: list[int]
    ) -> None:
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(i) for i in range(5)], T0 + 1)
        timeline = await store.get_timeline("run-1", from_index, limit)
        assert timeline is not None
        assert timeline.run == await store.load_run("run-1")
        assert [e.index for e in timeline.events] == expected
        assert [e.data for e in timeline.events] == [{"n": i} for i in expected]

    # -- read_events ---------------------------------------------------------------------
    async def test_read_events_unknown_run_returns_empty_list(self, store: ExecutionStore) -> None:
        assert await store.read_events("missing") == []
        assert await store.read_events("missing", 3, 10) == []

    @pytest.mark.parametrize(
        ("from_index", "limit", "expected"),
        [
            (0, None, [0, 1, 2, 3, 4]),
            (3, None, [3, 4]),
            (0, 1, [0]),
            (2, 2, [2, 3]),
            (3, 1000, [3, 4]),
            (5, None, []),
            (6, 5, []),
        ],
    )
    async def test_read_events_slices_by_from_index_and_limit(
        self, store: ExecutionStore, from_index: int, limit: int | None, expected: list[int]
    ) -> None:
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(i) for i in range(5)], T0 + 1)
        events = await store.read_events("run-1", from_index, limit)
        assert [e.index for e in events] == expected
        assert [e.data for e in events] == [{"n": i} for i in expected]
        assert all(e.run_id == "run-1" for e in events)

    @pytest.mark.parametrize("limit", [1, 2, 3])
    async def test_read_events_paging_reads_the_whole_log_once(
        self, store: ExecutionStore, limit: int
    ) -> None:
        claim = await started(store)
        await store.append_events("run-1", claim.lease, 0, [event(i) for i in range(4)], T0 + 1)
        await store.append_events("run-1", claim.lease, 4, [event(4)], T0 + 2)
        collected: list[StoredEvent] = []
        for _ in range(10):
            batch = await store.read_events("run-1", len(collected), limit)
            assert len(batch) <= limit
            if not batch:
                break
            collected.extend(batch)
        assert collected == await store.read_events("run-1")
        assert [e.index for e in collected] == [0, 1, 2, 3, 4]
        assert [e.created_at for e in collected] == [T0 + 1] * 4 + [T0 + 2]

    async def test_read_events_keeps_runs_apart(self, store: ExecutionStore) -> None:
        one = await started(store, "run-1")
        two = await started(store, "run-2")
        await store.append_events("run-1", one.lease, 0, [event(1)], T0 + 1)
        await store.append_events("run-2", two.lease, 0, [event(2), event(3)], T0 + 2)
        assert [e.data for e in await store.read_events("run-1")] == [{"n": 1}]
        assert [e.data for e in await store.read_events("run-2")] == [{"n": 2}, {"n": 3}]
        timeline = await store.get_timeline("run-1")
        assert timeline is not None
        assert [e.run_id for e in timeline.events] == ["run-1"]

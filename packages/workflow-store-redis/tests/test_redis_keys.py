"""The key layout: escaping keeps ids inside their hash tag, apart and in order."""

from __future__ import annotations

import pytest

from workflow.runtime.errors import InvalidArgumentError
from workflow.store.redis.keys import Keyspace, created_member, escape, unescape

AWKWARD_IDS = [
    "a",
    "run:1",
    "{tag}",
    "}{",
    "a}b{c",
    "%41",
    "A",
    "with space",
    "quote'\"",
    "é",
    "e\u0301",
    "日本語",
    "\U0001f600",
    "\uffff",
    "\U0010ffff",
    "x" * 255,
]


def hash_tag(key: str) -> str:
    """The part Redis Cluster hashes: between the first '{' and the next '}'."""
    start = key.index("{")
    return key[start + 1 : key.index("}", start + 1)]


@pytest.mark.parametrize("run_id", AWKWARD_IDS)
def test_every_key_of_a_run_shares_one_hash_tag_that_holds_the_whole_id(run_id: str) -> None:
    ks = Keyspace("wf:")
    keys = [ks.run(run_id), ks.events(run_id), ks.inbox(run_id), ks.consumed(run_id)]
    assert {hash_tag(k) for k in keys} == {f"wf:{escape(run_id)}"}
    assert unescape(hash_tag(keys[0]).removeprefix("wf:")) == run_id


def test_escape_is_injective_and_uses_no_structural_characters() -> None:
    escaped = [escape(i) for i in AWKWARD_IDS]
    assert len(set(escaped)) == len(AWKWARD_IDS)
    for e in escaped:
        assert set(e) <= set("0123456789abcdef")


def test_escape_preserves_code_point_order() -> None:
    # Sorted-set ties break on member bytes: escaped order must be id order.
    assert sorted(AWKWARD_IDS, key=escape) == sorted(AWKWARD_IDS)
    assert sorted(escape(i) for i in AWKWARD_IDS) == [escape(i) for i in sorted(AWKWARD_IDS)]


def test_created_member_orders_by_time_then_id() -> None:
    rows = [(5, "b"), (5, "a"), (40, "a"), (253_402_300_799_999, "z"), (0, "\U0001f600")]
    members = [created_member(t, r) for t, r in rows]
    assert sorted(members) == [created_member(t, r) for t, r in sorted(rows)]


def test_prefixes_keep_instances_apart() -> None:
    a, b = Keyspace("app1:"), Keyspace("app2:")
    assert a.run("r") != b.run("r")
    assert a.index("queued") != b.index("queued")
    assert hash_tag(a.index("queued")) == "g"


@pytest.mark.parametrize("prefix", ["", "a{b", "a}b", "has space", "tab\t", "é", 3, None])
def test_bad_prefix_is_rejected(prefix: object) -> None:
    with pytest.raises(InvalidArgumentError):
        Keyspace(prefix)  # type: ignore[arg-type]


def test_scan_pattern_escapes_glob_characters() -> None:
    assert Keyspace("a*b?[c]:").pattern == "a\\*b\\?\\[c\\]:{*"

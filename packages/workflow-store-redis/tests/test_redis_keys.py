"""The key layout: escaping keeps ids inside their hash tag, apart and in order."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

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
def test_every_key_of_a_run_and_its_indexes_share_its_buckets_hash_tag(run_id: str) -> None:
    ks = Keyspace("wf:")
    keys = ks.run_keys(run_id, "wf")
    assert {hash_tag(k) for k in keys} == {f"b{ks.run_bucket(run_id)}"}
    # The id follows the tag whole, escaped: nothing in it can end the key's structure.
    assert unescape(ks.run(run_id).rsplit(":", 1)[1]) == run_id


def test_a_schedules_runs_share_its_bucket() -> None:
    ks = Keyspace("wf:", 16)
    for sid in [*AWKWARD_IDS, "a@b", "@"]:
        run_id = f"{sid}@1700000000000"
        assert ks.run_bucket(run_id) == ks.schedule_bucket(sid)
        assert hash_tag(ks.run(run_id)) == hash_tag(ks.schedule(sid))


def test_a_childs_id_form_shares_its_parents_bucket_down_the_tree() -> None:
    ks = Keyspace("wf:", 16)
    for root in [*AWKWARD_IDS, "a@b", "sched@1700000000000"]:
        placement = root.rpartition("@")[0] or root
        parent = root
        for depth in range(3):
            # The form ctx.child makes: the parent's placement, '@', a suffix.
            child = f"{placement}@c{depth}"
            assert ks.run_bucket(child) == ks.run_bucket(parent)
            # The parent's children index is in that bucket too.
            assert hash_tag(ks.children(parent)) == hash_tag(ks.run(child))
            parent = child


def test_buckets_are_stable_and_spread() -> None:
    ks = Keyspace("wf:", 16)
    # crc32 of the UTF-8 id: fixed values, the same in every process and version (a
    # change here would strand the runs of every existing keyspace).
    assert [ks.run_bucket(i) for i in ("run-1", "order-42", "日本語")] == [3, 14, 5]
    used = {ks.run_bucket(f"run-{i}") for i in range(200)}
    assert used == set(range(16))


def test_sixteen_buckets_fall_4_6_6_on_redis_clis_three_masters() -> None:
    # docs/stores/redis.md quotes this spread: the slots of the 16 bucket tags over
    # the ranges `redis-cli --cluster create` gives three masters.
    ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
    slots = [key_slot(Keyspace("wf:", 16).index(k, "queued").encode()) for k in range(16)]
    spread = [sum(low <= slot <= high for slot in slots) for low, high in ranges]
    assert spread == [4, 6, 6]


@pytest.mark.parametrize("buckets", [0, 1025, "16", None, 2.0])
def test_bad_bucket_counts_are_rejected(buckets: object) -> None:
    with pytest.raises(InvalidArgumentError):
        Keyspace("wf:", buckets)  # type: ignore[arg-type]


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
    assert a.index(0, "queued") != b.index(0, "queued")
    assert hash_tag(a.index(3, "queued")) == "b3"
    assert hash_tag(a.meta("revision")) == "g"


@pytest.mark.parametrize("prefix", ["", "a{b", "a}b", "has space", "tab\t", "é", 3, None])
def test_bad_prefix_is_rejected(prefix: object) -> None:
    with pytest.raises(InvalidArgumentError):
        Keyspace(prefix)  # type: ignore[arg-type]


def test_scan_pattern_escapes_glob_characters() -> None:
    assert Keyspace("a*b?[c]:").pattern == "a\\*b\\?\\[c\\]:{*"

"""The payload codec: which values are payloads, how they encode, and what comes back."""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict, defaultdict
from decimal import Decimal
from typing import Any

import pytest

from workflow.runtime import CronSpec, ErrorInfo, IntervalSpec, InvalidArgumentError, PayloadError
from workflow.runtime.codec import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    decode,
    decode_error,
    decode_spec,
    encode,
    encode_error,
    encode_optional,
    encode_spec,
    validate,
)


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


class Numbers(list[int]):
    pass


def roundtrip(value: object) -> object:
    return decode(encode(value))


def nested_lists(levels: int) -> list[Any]:
    """``levels`` lists nested in each other, the innermost holding ``1``."""
    value: list[Any] = [1]
    for _ in range(levels - 1):
        value = [value]
    return value


def nested_dicts(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"k": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


# -- what is accepted, and comes back equal and of the same types -----------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        INT64_MAX,
        INT64_MIN,
        0.5,
        -0.0,
        1e308,
        5e-324,
        "",
        "plain",
        "ünïcødé ✓ 😀",
        '{"looks": "like json"}',
        "null",
        "1",
        [],
        {},
        [1, "two", 3.0, None, True, [{}]],
        {"a": {"b": [1, 2, {"c": None}]}, "": "empty key", "😀": "emoji key"},
    ],
    ids=repr,
)
def test_accepted_value_decodes_equal_and_of_the_same_types(value: object) -> None:
    back = roundtrip(value)
    assert back == value
    assert_same_types(back, value)


def assert_same_types(got: object, want: object) -> None:
    assert type(got) is type(want), (got, want)
    if isinstance(want, list):
        assert isinstance(got, list)
        for g, w in zip(got, want, strict=True):
            assert_same_types(g, w)
    elif isinstance(want, dict):
        assert isinstance(got, dict)
        assert list(got) == list(want)
        for key in want:
            assert_same_types(got[key], want[key])


def test_bool_stays_bool_and_int_stays_int() -> None:
    back = roundtrip([True, 1, False, 0])
    assert back == [True, 1, False, 0]
    assert isinstance(back, list)
    assert [type(v) for v in back] == [bool, int, bool, int]


def test_integral_float_stays_float() -> None:
    back = roundtrip(2.0)
    assert back == 2.0
    assert type(back) is float


def test_negative_zero_keeps_its_sign() -> None:
    back = roundtrip(-0.0)
    assert isinstance(back, float)
    assert math.copysign(1.0, back) == -1.0


def test_json_looking_string_stays_a_string() -> None:
    assert encode('{"a":1}') == '"{\\"a\\":1}"'
    assert roundtrip('{"a":1}') == '{"a":1}'


def test_encoding_is_compact_utf8_json_with_keys_in_insertion_order() -> None:
    assert encode({"b": [1, "é"], "a": None}) == '{"b":[1,"é"],"a":null}'


def test_decode_returns_a_fresh_object_every_time() -> None:
    text = encode({"items": [1, 2]})
    first = decode(text)
    second = decode(text)
    assert first == second
    assert first is not second
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert first["items"] is not second["items"]


def test_none_is_encoded_as_null_but_encode_optional_keeps_it_absent() -> None:
    assert encode(None) == "null"
    assert encode_optional(None) is None
    assert encode_optional(0) == "0"
    assert encode_optional(False) == "false"
    assert decode(None) is None
    assert decode("null") is None


def test_validate_accepts_what_encode_accepts_and_rejects_what_it_rejects() -> None:
    validate({"ok": [1, 2.5, None]})
    with pytest.raises(PayloadError):
        validate({"bad": (1, 2)})


# -- what is rejected ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ((1, 2), "builtins.tuple"),
        ({1, 2}, "builtins.set"),
        (frozenset({1}), "builtins.frozenset"),
        (b"bytes", "builtins.bytes"),
        (bytearray(b"x"), "builtins.bytearray"),
        (Decimal("1.5"), "decimal.Decimal"),
        (object(), "builtins.object"),
        (1j, "builtins.complex"),
        (Color.RED, "test_codec.Color"),
        (Name("x"), "test_codec.Name"),
        (Numbers([1]), "test_codec.Numbers"),
        (OrderedDict(a=1), "collections.OrderedDict"),
        (defaultdict(int), "collections.defaultdict"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_non_json_types_and_subclasses_are_rejected(value: object, type_name: str) -> None:
    with pytest.raises(PayloadError) as exc:
        encode(value)
    # The message names the offending type (qualified by its module).
    assert type_name.rsplit(".", 1)[-1] in str(exc.value)
    assert exc.value.path == "$"


def test_int_enum_is_rejected_although_json_would_encode_it_as_an_int() -> None:
    assert json.dumps(Color.RED) == "1"
    with pytest.raises(PayloadError, match=r"Color"):
        encode({"color": Color.RED})


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1, 2**100, -(2**100)])
def test_integer_outside_64_bits_is_rejected(value: int) -> None:
    with pytest.raises(PayloadError, match=r"does not fit in 64 bits") as exc:
        encode({"n": value})
    assert exc.value.path == "$.n"
    assert str(value) in str(exc.value)


def test_64_bit_bounds_are_accepted_exactly() -> None:
    assert encode(INT64_MAX) == "9223372036854775807"
    assert encode(INT64_MIN) == "-9223372036854775808"
    assert roundtrip(INT64_MAX) == 2**63 - 1
    assert roundtrip(INT64_MIN) == -(2**63)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=repr)
def test_non_finite_float_is_rejected(value: float) -> None:
    with pytest.raises(PayloadError, match=r"not finite") as exc:
        encode([0, value])
    assert exc.value.path == "$[1]"


def test_non_string_keys_are_rejected_with_the_path_of_the_object() -> None:
    with pytest.raises(PayloadError, match=r"object key at \$\.outer is int 1, not str") as exc:
        encode({"outer": {1: "one"}})
    assert exc.value.path == "$.outer"


@pytest.mark.parametrize("key", [None, True, 1.5, ("a",)], ids=repr)
def test_keys_of_other_types_are_rejected(key: object) -> None:
    with pytest.raises(PayloadError, match=r"not str"):
        encode({key: 1})


def test_str_subclass_key_is_rejected() -> None:
    with pytest.raises(PayloadError, match=r"Name"):
        encode({Name("k"): 1})


# -- nesting depth ----------------------------------------------------------------


def test_max_depth_is_100() -> None:
    assert MAX_DEPTH == 100


@pytest.mark.parametrize("build", [nested_lists, nested_dicts])
def test_exactly_100_levels_of_nesting_are_accepted(build: Any) -> None:
    value = build(100)
    assert roundtrip(value) == value


def test_101_levels_of_lists_are_rejected_at_the_innermost_list() -> None:
    with pytest.raises(PayloadError, match=r"deeper than 100 levels") as exc:
        encode(nested_lists(101))
    assert exc.value.path == "$" + "[0]" * 100


def test_101_levels_of_objects_are_rejected_at_the_innermost_object() -> None:
    with pytest.raises(PayloadError, match=r"deeper than 100 levels") as exc:
        encode(nested_dicts(101))
    assert exc.value.path == "$" + ".k" * 100


def test_mixed_nesting_counts_lists_and_objects_alike() -> None:
    ok: Any = 1
    for i in range(100):
        ok = [ok] if i % 2 else {"k": ok}
    assert roundtrip(ok) == ok
    with pytest.raises(PayloadError, match=r"deeper than 100 levels"):
        encode([ok])


def test_scalars_do_not_count_as_a_level() -> None:
    # 100 lists around a scalar: the scalar sits at depth 100 and is fine.
    assert encode(nested_lists(100)).count("[") == 100


# -- text ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\udc00\ud800"], ids=ascii)
def test_lone_surrogate_in_a_string_is_rejected(text: str) -> None:
    with pytest.raises(PayloadError, match=r"lone surrogate") as exc:
        encode({"list": ["fine", text]})
    assert exc.value.path == "$.list[1]"


def test_lone_surrogate_in_a_key_is_rejected_with_the_path_of_the_object() -> None:
    with pytest.raises(PayloadError, match=r"lone surrogate") as exc:
        encode({"outer": {"\ud800": 1}})
    assert exc.value.path == "$.outer"


def test_surrogate_pair_written_as_one_code_point_is_fine() -> None:
    assert roundtrip("\U0001f600") == "😀"
    assert encode("😀") == '"😀"'


# -- size limit ----------------------------------------------------------------------


def test_size_limit_counts_utf8_bytes_of_the_encoding() -> None:
    # "é" is one character but two UTF-8 bytes; with the quotes: 2 * 10 + 2 bytes.
    value = "é" * 10
    assert len(encode(value).encode("utf-8")) == 22
    assert encode(value, max_bytes=22) == '"' + value + '"'
    with pytest.raises(PayloadError, match=r"encodes to 22 bytes, over the limit of 21 bytes"):
        encode(value, max_bytes=21)


def test_size_limit_with_four_byte_characters() -> None:
    value = {"k": "😀" * 5}  # {"k":"…"}: 8 ASCII bytes + 5 * 4 bytes = 28
    assert encode(value, max_bytes=28) == '{"k":"😀😀😀😀😀"}'
    with pytest.raises(PayloadError, match=r"encodes to 28 bytes"):
        encode(value, max_bytes=27)


def test_size_limit_error_names_the_option_and_reports_the_whole_payload() -> None:
    with pytest.raises(PayloadError, match=r"max_payload_bytes") as exc:
        encode(["x" * 100], max_bytes=50, what="input")
    assert str(exc.value).startswith("input encodes to 104 bytes")
    assert exc.value.path == "$"


def test_default_limit_is_one_mebibyte_exactly() -> None:
    assert DEFAULT_MAX_PAYLOAD_BYTES == 1024 * 1024
    at_limit = "x" * (DEFAULT_MAX_PAYLOAD_BYTES - 2)  # plus two quotes
    assert len(encode(at_limit)) == DEFAULT_MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadError, match=r"over the limit of 1048576 bytes"):
        encode(at_limit + "x")


def test_multibyte_text_just_over_the_default_limit_is_rejected() -> None:
    # Few enough characters that a character count would let it through.
    text = "€" * ((DEFAULT_MAX_PAYLOAD_BYTES - 2) // 3 + 1)
    assert len(text) + 2 < DEFAULT_MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadError, match=r"over the limit"):
        encode(text)


# -- errors --------------------------------------------------------------------------


def test_payload_error_is_an_invalid_argument_error() -> None:
    assert issubclass(PayloadError, InvalidArgumentError)
    assert issubclass(PayloadError, ValueError)


def test_error_message_starts_with_what_the_value_is() -> None:
    with pytest.raises(PayloadError) as exc:
        encode({"a": {1, 2}}, what="signal payload")
    message = str(exc.value)
    assert message.startswith("signal payload: value at $.a is builtins.set")
    assert exc.value.path == "$.a"


def test_path_points_at_the_offending_value_deep_inside() -> None:
    value = {"order": {"items": [{"sku": "a", "price": 1.0}, {"sku": "b", "price": math.nan}]}}
    with pytest.raises(PayloadError) as exc:
        encode(value)
    assert exc.value.path == "$.order.items[1].price"
    assert "$.order.items[1].price" in str(exc.value)


def test_first_offending_value_is_the_one_reported() -> None:
    with pytest.raises(PayloadError) as exc:
        encode([1, (2,), math.inf])
    assert exc.value.path == "$[1]"


# -- ErrorInfo and schedule specs ------------------------------------------------------------


def test_error_info_round_trips_with_traceback() -> None:
    error = ErrorInfo("ValueError", "bad ünïcode ✓", "E42", "Traceback (most recent call last):")
    text = encode_error(error)
    assert json.loads(text) == {
        "type": "ValueError",
        "message": "bad ünïcode ✓",
        "code": "E42",
        "traceback": "Traceback (most recent call last):",
    }
    assert decode_error(text) == error


def test_error_info_without_traceback_round_trips_without_a_traceback_key() -> None:
    error = ErrorInfo("Timeout", "took too long")
    text = encode_error(error)
    assert json.loads(text) == {"type": "Timeout", "message": "took too long", "code": "error"}
    back = decode_error(text)
    assert back == error
    assert back is not None
    assert back.traceback is None


def test_decode_error_of_absent_value_is_none() -> None:
    assert decode_error(None) is None


def test_encode_error_applies_the_size_limit_and_text_rules() -> None:
    with pytest.raises(PayloadError, match=r"^error encodes to"):
        encode_error(ErrorInfo("E", "x" * 100), max_bytes=64)
    with pytest.raises(PayloadError, match=r"lone surrogate"):
        encode_error(ErrorInfo("E", "bad \ud800"))


@pytest.mark.parametrize(
    "spec",
    [
        CronSpec("*/5 * * * *"),
        CronSpec("30 2 * * *", "Europe/Berlin"),
        CronSpec("*/15 * * * * *", "America/New_York"),
        IntervalSpec(60_000),
        IntervalSpec(1, 0),
        IntervalSpec(86_400_000, 1_700_000_000_123),
        IntervalSpec(253_402_300_799_999, 253_402_300_799_999),
    ],
    ids=repr,
)
def test_schedule_spec_round_trips_exactly(spec: CronSpec | IntervalSpec) -> None:
    back = decode_spec(encode_spec(spec))
    assert back == spec
    assert type(back) is type(spec)


def test_spec_encodings_are_small_json_objects() -> None:
    assert json.loads(encode_spec(CronSpec("0 9 * * *", "Asia/Tokyo"))) == {
        "cron": "0 9 * * *",
        "tz": "Asia/Tokyo",
    }
    assert json.loads(encode_spec(IntervalSpec(1000, 7))) == {"every_ms": 1000, "anchor_ms": 7}

"""Decoding records: integers of any size kept exactly, and decode_batch
answering exactly what decode_object answers, record by record."""

from __future__ import annotations

import doctest
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener import decode, jsonio, offenders, sinks, source
from screener.decode import decode_batch, decode_object, meta_of, strip_eol
from screener.jsonio import BigInt
from screener.source import Truncated

BIG = 123456789012345678901234567890


@pytest.mark.parametrize("module", [jsonio, decode, source, sinks, offenders])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


# -- jsonio: exact integers ------------------------------------------------------------------
@pytest.mark.parametrize("text,value,kind", [
    ("123456789012345678901234567890", BIG, BigInt),
    ("-123456789012345678901234567890", -BIG, BigInt),
    ("18446744073709551615", 2**64 - 1, int),  # the largest orjson holds
    ("18446744073709551616", 2**64, BigInt),
    ("-9223372036854775808", -2**63, int),  # the smallest
    ("-9223372036854775809", -2**63 - 1, BigInt),
    ("12345678901234567890.5", 12345678901234567890.5, float),  # a float stays a float
    ("1e30", 1e30, float),
    ('"123456789012345678901234567890"', "123456789012345678901234567890", str),
    ("7", 7, int),
])
def test_integers_beyond_64_bits_come_back_exact(text, value, kind):
    for raw in (text.encode(), text, f"[{text}]".encode()):
        got = jsonio.loads(raw)
        got = got[0] if isinstance(got, list) else got
        assert got == value and type(got) is kind
    assert jsonio.dumps(jsonio.loads(text.encode())) == json.dumps(json.loads(text)).replace(" ", "").encode()


@pytest.mark.parametrize("raw", [b"nope", b'{"a": NaN}', b'"\\ud800"', b"[1,]", b"\xff", b"", b'{"a": 1e400}',
                                 b"1" * 400, b'{"a": ' + b"9" * 25 + b"x}"])
def test_invalid_json_is_refused_as_orjson_refuses_it(raw):
    with pytest.raises(orjson.JSONDecodeError) as ours:
        jsonio.loads(raw)
    with pytest.raises(orjson.JSONDecodeError) as theirs:
        orjson.loads(raw)
    assert str(ours.value) == str(theirs.value)
    assert jsonio.loads_batch([raw, b"1"]) == ([None, 1], [0])


@pytest.mark.parametrize("value,written", [
    (BigInt(BIG), str(BIG).encode()),
    ({"id": BigInt(-BIG), "n": [BigInt(2**64), 2**64 - 1]}, b'{"id":-%d,"n":[%d,%d]}' % (BIG, 2**64, 2**64 - 1)),
    ([True, False, None, 1.5, "x"], b'[true,false,null,1.5,"x"]'),  # bool is an int subclass orjson knows
])
def test_dumps_writes_big_integers_exactly(value, written):
    assert jsonio.dumps(value) == written
    assert jsonio.dumps(value, newline=True) == written + b"\n"


def test_dumps_writes_other_subclasses_as_their_base_and_refuses_the_unknown():
    import collections
    import enum

    class Name(str):
        pass

    class Level(enum.IntEnum):
        HIGH = 3

    value = {"name": Name("x"), "counts": collections.Counter(a=1), "level": Level.HIGH, "ids": collections.UserList([1])}
    with pytest.raises(TypeError):
        jsonio.dumps(value)  # UserList is no list: as orjson, refused
    del value["ids"]
    assert jsonio.dumps(value) == orjson.dumps({"name": "x", "counts": {"a": 1}, "level": 3})


def test_big_ints_are_ints():
    big = jsonio.loads(b"[%d]" % BIG)[0]
    assert isinstance(big, int) and big == BIG and hash(big) == hash(BIG) and {BIG: 1}[big] == 1
    assert big + 1 == BIG + 1 and str(big) == str(BIG) and repr(big) == repr(BIG)


_scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=30),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.integers(min_value=-(2**63) - 3, max_value=-(2**63) + 3), st.integers(min_value=2**64 - 3, max_value=2**64 + 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.from_regex(r"[0-9]{15,30}", fullmatch=True),  # digit runs in strings: no change
)
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                     max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(_json, min_size=1, max_size=8), st.sampled_from(["", " ", "\n", "\r\n"]))
def test_exact_decoding_round_trips_anything_json(values, spacing):
    """loads equals the standard library with exact integers (the reference),
    loads_batch equals loads record by record, and dumps writes it back."""
    raws = [json.dumps(v, separators=(",", ": " if spacing else ":")).encode() + spacing.encode() for v in values]
    exact = _typed([json.loads(r) for r in raws])
    assert _typed([jsonio.loads(r) for r in raws]) == exact
    batch, failed = jsonio.loads_batch(raws)
    assert failed == [] and _typed(batch) == exact
    assert _typed([json.loads(jsonio.dumps(v)) for v in batch]) == exact
    assert jsonio.digit_run_records(raws) == jsonio.digit_run_records_each(raws)


def _typed(value):
    """``value`` with every number tagged by its kind: 1 and 1.0 are equal, but not here."""
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("int" if isinstance(value, int) else "float", value)
    return value


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789-x\n ", max_size=60).map(str.encode), max_size=12))
def test_the_batch_scan_finds_every_digit_run_the_record_test_finds(raws):
    assert jsonio.digit_run_records(raws) == jsonio.digit_run_records_each(raws)


# -- decode: big ids are ids -----------------------------------------------------------------
def test_a_post_with_a_big_id_is_a_post_and_keeps_every_number():
    raw = b'{"id": %d, "text": "t", "views": %d, "account": {"id": %d}}' % (BIG, -BIG, BIG + 1)
    for objects, texts, rejected in (decode_batch([raw + b"\n"], 1000), ([decode_object(raw, 1000)], ["t"], [])):
        assert rejected == [] and texts == ["t"]
        [obj] = objects
        assert obj["id"] == BIG and type(obj["id"]) is BigInt
        assert jsonio.dumps(meta_of(obj)) == b'{"views":-%d,"account":{"id":%d}}' % (BIG, BIG + 1)


# -- decode_batch == decode_object, record by record -----------------------------------------
LIMIT = 120

_ids = st.one_of(st.integers(min_value=-(10**25), max_value=10**25), st.text(max_size=6))
_posts = st.fixed_dictionaries({"id": _ids, "text": st.text(max_size=20)},
                               optional={"account_id": _ids, "published_at": st.integers(0, 2 * 10**12),
                                         "account": st.fixed_dictionaries({"id": _ids}, optional={"type": st.text(max_size=5)}),
                                         "kind": st.just("post"), "n": st.integers(min_value=-(10**22), max_value=10**22)})
_profiles = st.fixed_dictionaries({"kind": st.just("profile"), "id": _ids, "name": st.text(max_size=10)},
                                  optional={"bio": st.text(max_size=10)})
_wrong = st.one_of(
    st.fixed_dictionaries({"id": st.one_of(st.booleans(), st.floats(allow_nan=False), st.none(), st.lists(st.integers())),
                           "text": st.text(max_size=5)}),
    st.fixed_dictionaries({"id": _ids, "text": st.one_of(st.integers(), st.none(), st.lists(st.text()))}),
    st.fixed_dictionaries({"id": _ids, "text": st.text(max_size=5),
                           "kind": st.one_of(st.none(), st.text(max_size=6), st.lists(st.just("post")))}),
    st.fixed_dictionaries({"id": _ids, "text": st.text(max_size=5), "account": st.one_of(st.text(), st.integers(), st.lists(st.none()))}),
    st.fixed_dictionaries({"kind": st.just("profile"), "id": st.one_of(_ids, st.none())},
                          optional={"name": st.one_of(st.text(max_size=4), st.integers()), "bio": st.one_of(st.text(), st.integers())}),
    _json,
)
_valid = st.one_of(_posts, _profiles, _wrong).map(lambda v: json.dumps(v).encode())
_broken = st.one_of(
    st.binary(max_size=30),
    st.sampled_from([b"", b"   ", b"not json", b'{"id": 1, "text": "x"', b'{"id": 1, "text": "\xff"}', b"[1, 2]",
                     b'{"id": 1, "text": "x"} {}', b'{"id": NaN, "text": "x"}']),
    st.text(max_size=3 * LIMIT).map(lambda t: json.dumps({"id": 1, "text": t}).encode()),  # often oversize
    st.integers(LIMIT - 2, LIMIT + 5).map(lambda n: Truncated(b'{"id":1,"text":"x"}'.ljust(n), 10**9)),
)
_records = st.tuples(st.one_of(_valid, _valid, _broken), st.sampled_from([b"", b"\n", b"\r\n"])).map(
    lambda r: r[0] if isinstance(r[0], Truncated) else r[0] + r[1])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_records, max_size=25))
def test_decode_batch_equals_decode_object_record_by_record(raws):
    one_by_one = [decode_object(strip_eol(raw), LIMIT) for raw in raws]
    objects, texts, rejected = decode_batch(raws, LIMIT)
    assert rejected == [(i, r) for i, r in enumerate(one_by_one) if isinstance(r, str)]
    good = [r for r in one_by_one if not isinstance(r, str)]
    # dumps tells a BigInt from the float orjson would have made of it, and 1 from 1.0
    assert jsonio.dumps(objects) == jsonio.dumps(good)
    assert texts == [o["text"] if o.get("kind", "post") == "post" else "" for o in good]


POST = b'{"id": %d, "text": "\xe4\xbd\xa0\xe5\xa5\xbd", "account_id": "u1", "published_at": 1762000000000}\n'


@pytest.mark.parametrize("bad,reason", [
    (b"not json\n", "invalid JSON"),
    (b'{"id": 1.5, "text": "x"}\n', '"id" is float'),
    (b'{"id": 1, "text": 3}\n', '"text" is int'),
    (b'{"id": 1, "text": "x", "kind": null}\n', "\"kind\" is None"),
    (b'{"id": 1, "text": "' + b"x" * 2000 + b'"}\n', "exceeds the limit"),
    (Truncated(b'{"id": 1, "text": "x"}' + b" " * 979, 5000), "line of 5000 bytes exceeds the limit of 1000 bytes"),
])
def test_one_bad_record_is_the_only_one_decoded_again(bad, reason):
    """The batch's other records are taken from the one pass over the batch:
    only the bad one is a suspect that decode_object looks at."""
    raws = [POST % i for i in range(3000)]
    raws.insert(1234, bad)
    assert decode._suspects(raws, 1000)[2] == {1234}
    objects, texts, rejected = decode_batch(raws, 1000)
    [(index, why)] = rejected
    assert index == 1234 and reason in why and len(objects) == len(texts) == 3000
    assert [o["id"] for o in objects] == list(range(3000))


def test_profiles_among_posts_are_suspects_that_pass():
    raws = [POST % 1, b'{"kind": "profile", "id": "u1", "name": "n"}', POST % 2]
    objects, texts, rejected = decode_batch(raws, 1000)
    assert rejected == [] and texts == ["你好", "", "你好"] and objects[1]["name"] == "n"

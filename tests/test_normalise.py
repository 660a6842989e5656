"""Normalisation: what folds to what, and that offsets always map back."""

from __future__ import annotations

import html

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy as np

from screener import charmap, normalise
from screener.charmap import FoldConfig
from screener.normalise import collapse_runs, NormaliseConfig, Normaliser, html_edits

N = Normaliser()
PLAIN = Normaliser(NormaliseConfig(html=False))

FOLDS = [
    ("traditional", "賭博網站", "赌博网站"),
    ("taiwan characters", "網際網路資訊", "网际网路资讯"),
    ("variant characters", "裏面", "里面"),
    ("full width", "ＡＢＣ１２３", "abc123"),
    ("case", "FuCk", "fuck"),
    ("circled", "Ⓕⓤⓒⓚ①②", "fuck12"),
    ("parenthesised", "⒡⑴⒈", "f11"),
    ("mathematical", "𝐟𝒖𝓬𝕜", "fuck"),
    ("kangxi radical", "⼀", "一"),
    ("compatibility ideograph", "兀", "兀"),
    ("spaces and punctuation", "赌 博，。！", "赌博"),
    ("invisible", "赌\u200b\u200c\u200d\u2060\ufeff博", "赌博"),
    ("bidi", "赌\u202a\u202e\u2066博", "赌博"),
    ("variation selectors", "赌\ufe0f博\U000e0100", "赌博"),
    ("emoji", "赌😀🇨🇳👍🏻博", "赌博"),
    ("combining marks", "赌\u0301\u0336博", "赌博"),
    ("html tags", "<p class='x'>赌</p><br/>博<!-- c -->", "赌博"),
    ("html entities", "&#36172;&#x535A;&amp;", "赌博"),
    ("unknown entity stays text", "&zzzz;", "zzzz"),
    ("comparison is not a tag", "x<2且y>1", "x2且y1"),
    ("enclosed ten stays", "⑩", "⑩"),
]


@pytest.mark.parametrize("name,text,expected", FOLDS, ids=[r[0] for r in FOLDS])
def test_folds(name, text, expected):
    assert N.fold_string(text) == expected


def test_noise_is_configurable():
    keep_plus = Normaliser(NormaliseConfig(FoldConfig(noise_keep="+", noise_extra="的")))
    assert keep_plus.fold_string("c++的书") == "c++书"
    assert N.fold_string("c++的书") == "c的书"


def test_traditional_can_be_switched_off():
    assert Normaliser(NormaliseConfig(FoldConfig(traditional=False))).fold_string("賭博") == "賭博"


def test_map_back_example():
    n = N.normalise("x赌*博y")
    assert n.text == "x赌博y"
    assert n.span(1, 3) == (1, 4)


# -- properties -----------------------------------------------------------------
_ALPHABET = "赌博賭網站ａＡa1１① ，*<>/&#;bp\u200b😀\ufe0f𠀀"
_texts = st.text(alphabet=_ALPHABET, max_size=30)


@settings(max_examples=300, deadline=None)
@given(text=_texts, data=st.data())
def test_offsets_map_back(text, data):
    """Any normalised span maps to an original substring that folds to it."""
    n = N.normalise(text)
    assert len(n.starts) == len(n.text) == len(n.ends)
    if not n.text:
        return
    i = data.draw(st.integers(0, len(n.text) - 1))
    j = data.draw(st.integers(i + 1, len(n.text)))
    start, end = n.span(i, j)
    assert N.fold_string(text[start:end]) == n.text[i:j]


@settings(max_examples=300, deadline=None)
@given(text=_texts)
def test_runs_are_the_lexicons_collapse(text):
    """Posts (the fold) and lexicon terms (collapse_runs of the spelled fold)
    collapse the same runs, and count them the same."""
    n = N.normalise(text)
    assert collapse_runs(N.fold_many([text], collapse=False)[0]) == (n.text, tuple(n.runs))


@settings(max_examples=200, deadline=None)
@given(text=_texts)
def test_folding_is_idempotent(text):
    once = N.fold_string(text)
    assert N.fold_string(once) == once


# Markup-heavy text: tags with quoted (">" inside) and unquoted attributes,
# comments, bogus comments, references (leading zeros, no ";", unknown),
# script and style, unclosed openers, prose "<" and "&", and Han characters.
_han = st.text(alphabet="赌博網站ａ1 ，", min_size=1, max_size=3)
_value = st.text(alphabet="赌x<>\"'=/&#; ", max_size=6)
_attribute = st.tuples(
    st.sampled_from([" title", " x", " =", ' a"b', "/b"]),
    st.sampled_from(["", "=", " = "]),
    st.sampled_from(['"', "'", ""]),
    _value,
    st.sampled_from(['"', "'", ""]),
).map("".join)
_tag = st.tuples(
    st.sampled_from(["<", "</"]),
    st.sampled_from(["b", "I", "a", "br", "my-custom-element-name-long", "o:p", "script", "STYLE", "b赌"]),
    st.lists(_attribute, max_size=3).map("".join),
    st.sampled_from([">", "/>", " >", ""]),
).map("".join)
_comment = st.tuples(
    st.sampled_from(["<!--", "<!-", "<!", "<?", "<![CDATA[", "<!DOCTYPE "]),
    _value,
    st.sampled_from(["-->", "--!>", ">", "]]>", ""]),
).map("".join)
_reference = st.one_of(
    st.tuples(st.sampled_from(["&#", "&#x", "&#X"]), st.sampled_from(["", "0", "0000"]),
              st.sampled_from(["36172", "535A", "41", "0", "1114112", "1", "128", "zz"]),
              st.sampled_from([";", ""])).map("".join),
    st.tuples(st.just("&"), st.sampled_from(["amp", "lt", "nbsp", "not", "notin", "foo", "fjlig", "ampx", "AMP"]),
              st.sampled_from([";", "", "x;"])).map("".join),
)
_raw_text = st.tuples(
    st.sampled_from(["<script>", "<style>", "<Script type='a>b'>"]),
    _value,
    st.sampled_from(["</script>", "</style>", "</SCRIPT >", "</script", "</script x='", ""]),
).map("".join)
_markup_texts = st.lists(
    st.one_of(_han, _tag, _comment, _reference, _raw_text,
              st.sampled_from(["<", "&", ">", "<3", "a<b", "A&B", '"', "'", "</", "\x00"])),
    max_size=8,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_markup_texts)
def test_markup_offsets_map_back(text):
    """Each normalised character comes from one original character, from one
    reference, or from a run of them (with noise or markup between)."""
    n = N.normalise(text)
    assert len(n.starts) == len(n.text) == len(n.runs)
    assert n.starts == sorted(set(n.starts))
    ends = n.ends
    for i, (start, end) in enumerate(zip(n.starts, ends)):
        assert i + 1 == len(n.starts) or end <= n.starts[i + 1]
        piece = text[start:end]
        if n.runs[i] > 1:  # a run: it folds to the one character, and has as many of it
            assert N.fold_string(piece) == n.text[i]
            assert N.fold_many([piece], collapse=False) == [n.text[i] * n.runs[i]]
        elif end - start > 1:  # a decoded reference
            assert piece[0] == "&" and PLAIN.fold_string(html.unescape(piece)) == n.text[i]
        else:
            assert PLAIN.fold_string(piece) == n.text[i]


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.one_of(_texts, _markup_texts), max_size=6))
def test_batch_agrees_with_single(texts):
    """The batch path and the one-text path produce the same normalised posts."""
    batch = N.encode_batch(texts, N.alphabet)
    assert len(batch.starts) == len(texts) + 1
    for i, text in enumerate(texts):
        codes = batch.codes[batch.starts[i]:batch.starts[i + 1] - 1]
        assert codes.astype("<u4").tobytes().decode("utf-32-le") == N.fold_string(text)
        assert batch.codes[batch.starts[i + 1] - 1] == N.alphabet.separator


def test_batch_applies_the_html_rule_only_to_posts_with_markup(monkeypatch):
    """One post with "<" or "&" does not send the whole batch through the HTML rule."""
    seen = []

    def spy(text):
        seen.append(text)
        return html_edits(text)

    monkeypatch.setattr(normalise, "html_edits", spy)
    texts = ["<b>赌</b>博", "赌博", "", "x&amp;", "<", "a>b", "&", "赌<!--", "--> no opener here", "I <3 u &lt;3",
             "R&D&#36172;</b", "&amp;<?x>", "a<b &amp; c>d", "a<b &amp; c<d"]
    batch = N.encode_batch(texts, N.alphabet)
    # Only posts that may hold a tag or comment run the rule on their own;
    # references elsewhere are decoded in one pass over the batch.
    assert seen == ["<b>赌</b>博", "&amp;<?x>", "a<b &amp; c>d"]
    decoded = batch.codes.astype("<u4").tobytes().decode("utf-32-le").split("\x00")
    assert decoded == [N.fold_string(t) for t in texts] + [""]


def test_markup_cannot_reach_across_posts():
    """Each post is its own document: an opener in one is never closed by the next."""
    texts = ["赌<!--", "-->博", "<a x='", "'>y", "<script>", "</script>z"]
    batch = N.encode_batch(texts, N.alphabet)
    decoded = batch.codes.astype("<u4").tobytes().decode("utf-32-le").split("\x00")[:-1]
    assert decoded == ["赌", "博", "ax", "y", "", "z"]


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_markup_texts, min_size=1, max_size=6))
def test_batch_markup_maps_back_as_each_post_alone(texts):
    """References of posts without a tag are decoded in one pass over the
    batch, tags post by post (``_batch_markup``): either way every post
    normalises, and maps back, as it does alone."""
    from screener.refold import refold

    posts = refold(N, texts)
    for i, text in enumerate(texts):
        n = N.normalise(text)
        assert posts.post_text(i) == n.text
        assert [posts.span(i, j, j + 1) for j in range(len(n.text))] == [n.span(j, j + 1) for j in range(len(n.text))]


_reference_posts = st.lists(st.one_of(_reference, _reference, _reference, _han, st.sampled_from(["&", "A&B", "&amp", "<3"])),
                           min_size=8, max_size=16).map("".join)


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(st.one_of(_reference_posts, _reference_posts, _markup_texts), min_size=16, max_size=30))
def test_a_batch_of_many_references_maps_back_as_each_post_alone(texts):
    """Past 64 edits a batch's references are written in numpy passes
    (``_covered``), and each distinct reference is decoded once: the posts
    still normalise and map back as they do alone."""
    from screener.refold import refold

    posts = refold(N, texts)
    for i, text in enumerate(texts):
        n = N.normalise(text)
        assert posts.post_text(i) == n.text
        assert [posts.span(i, j, j + 1) for j in range(len(n.text))] == [n.span(j, j + 1) for j in range(len(n.text))]


@settings(max_examples=300, deadline=None)
@given(cuts=st.lists(st.integers(0, 40), max_size=30))
def test_covered_positions_are_those_of_the_ranges(cuts):
    """``_covered`` against a set built range by range: disjoint ranges,
    adjacent ones (an end that is the next start) and empty ones."""
    from screener.normalise import _covered

    bounds = sorted(cuts)
    ranges = list(zip(bounds[0::2], bounds[1::2]))
    expected = sorted({i for start, end in ranges for i in range(start, end)})
    assert _covered(ranges).tolist() == expected


@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "赌博\udc80"])
def test_a_lone_surrogate_is_refused_in_a_batch_as_alone(text):
    """The batch's code points (``code_points``) refuse what the encoder of
    the one-text path refuses, so a post cannot pass in a batch and fail alone."""
    with pytest.raises(UnicodeEncodeError):
        N.fold_string(text)
    with pytest.raises(UnicodeEncodeError):
        N.fold_many(["ok", text])
    with pytest.raises(UnicodeEncodeError):
        N.encode_batch([text], N.alphabet)
    assert N.fold_many(["a\U0001F600\ud7ff\ue000b"]) == [N.fold_string("a\U0001F600\ud7ff\ue000b")]


def test_long_references_decode_in_a_batch_without_filling_the_cache():
    """A reference as long as a post decodes like a short one, but only short
    ones are cached (4,096 long ones would hold a gigabyte)."""
    from screener.normalise import _reference

    long_ref = "&#" + "0" * 5000 + "36172;"
    texts = [f"前{long_ref}博后", "x&amp;y"]
    before = _reference.cache_info().currsize
    batch = N.encode_batch(texts, N.alphabet)
    decoded = batch.codes.astype("<u4").tobytes().decode("utf-32-le").split("\x00")[:-1]
    assert decoded == [N.fold_string(t) for t in texts]
    assert N.fold_string(texts[0]) == "前赌博后"
    assert _reference.cache_info().currsize <= before + 1  # &amp; at most


@pytest.mark.parametrize("config", [
    FoldConfig(),
    FoldConfig(noise_categories=(*charmap.DEFAULT_NOISE_CATEGORIES, "Lo")),  # ideographs noise
    FoldConfig(noise_categories=("Zs",)),  # unassigned points kept
    FoldConfig(traditional=False),
    # named points inside the shortcut ranges: they must take the long way
    FoldConfig(aliases=(("\U00010fff", "b"), ("\U00020001", "a")), noise_extra="\U00020010\U00010ffe",
               noise_keep="\U0002f805\U00010ffd"),
], ids=["default", "lo-noise", "cn-kept", "no-traditional", "named-points"])
def test_fold_table_shortcuts_change_nothing(config):
    # The ideographic planes and unassigned points skip the per-point fold
    # (a cold start's fold table: 0.36 → 0.24 s); every point must still
    # fold as the long way folds it.
    fast, slow = charmap._build(config), charmap._build(config, shortcuts=False)
    differ = np.flatnonzero(fast != slow)
    assert differ.size == 0, [hex(int(cp)) for cp in differ[:10]]

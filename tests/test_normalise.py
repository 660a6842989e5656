"""Normalisation: what folds to what, and that offsets always map back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.charmap import FoldConfig
from screener.normalise import NormaliseConfig, Normaliser

N = Normaliser()

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
_ALPHABET = "赌博網站ａＡa1① ，*<>/&#;bp\u200b😀\ufe0f𠀀"
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


@settings(max_examples=200, deadline=None)
@given(text=_texts)
def test_folding_is_idempotent(text):
    once = N.fold_string(text)
    assert N.fold_string(once) == once


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(_texts, max_size=6))
def test_batch_agrees_with_single(texts):
    """The batch path and the one-text path produce the same normalised posts."""
    batch = N.encode_batch(texts, N.alphabet)
    for i, text in enumerate(texts):
        codes = batch.codes[batch.starts[i]:batch.starts[i + 1] - 1]
        assert codes.astype("<u4").tobytes().decode("utf-32-le") == N.fold_string(text)
        assert batch.codes[batch.starts[i + 1] - 1] == N.alphabet.separator

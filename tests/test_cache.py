"""The compiled-lexicon cache: hits, misses, corruption, versions, trust, and
that a cached engine screens exactly as a freshly built one."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from screener import cache as cache_module
from screener import compiled
from screener.cache import Cache
from screener.judge import Engine
from screener.lexicon.tables import RuleTable
from screener.segment import Segmenter

from .conftest import LEXICONS, ROOT
from .test_screening import LEXICON, ROWS

MANIFEST = """
[categories.officials]
title_zh = "官员姓名"
title_en = "Officials' names"
action = "recall"
severity = 4
scope = "profile"
"""
FILES = {**LEXICON, "officials": "示例官员名\n"}
EXTRA_POSTS = ["示例官员名发帖", "代开发票找我", "参加微信群", "", "普通的一天", "网上du博", "赌(dǔ)博(bó)", "dubois"]


@pytest.fixture
def lexdir(make_lexicon) -> Path:
    return make_lexicon(FILES, MANIFEST)


def stats() -> dict[str, int]:
    return dict(cache_module.STATS)


def delta(before: dict[str, int]) -> dict[str, int]:
    now = stats()
    return {k: now.get(k, 0) - before.get(k, 0) for k in {*now, *before} if now.get(k, 0) != before.get(k, 0)}


def entries(directory: Path, kind: str = "lexicon") -> list[Path]:
    return sorted(directory.glob(f"{kind}-*.entry"))


def outcome(engine: Engine) -> list:
    """Everything an engine decides about the screening table, comparable."""
    texts = [text for _, _, text, _ in ROWS] + EXTRA_POSTS
    out = []
    for screening in engine.posts.screen(texts) + engine.profiles.screen(texts):
        out.append((screening.action, [
            (d.kept, d.reason, d.hit.rule.id, d.hit.rule.mode, d.hit.start, d.hit.end, d.hit.matched)
            for d in screening.decisions
        ]))
    objects = [{"id": i, "text": t, "account_id": "u"} for i, t in enumerate(texts)]
    for j in engine.judge(objects, texts):
        out.append((j.index, j.action, [(h.hit.rule.id, h.action) for h in j.hits]))
    return out


def test_second_build_loads_from_the_cache(lexdir, tmp_path):
    directory = tmp_path / "cache"
    before = stats()
    fresh = Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before) == {"miss:lexicon": 1, "stored:lexicon": 1, **_fold_events(before)}
    before = stats()
    cached = Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before) == {"hit:lexicon": 1}
    assert isinstance(cached.posts.lexicons.rules, RuleTable)
    assert outcome(cached) == outcome(fresh)
    assert cached.lexicon_version == fresh.lexicon_version
    assert cached.posts.lexicons.term_count == fresh.posts.lexicons.term_count
    assert len(entries(directory)) == 1


def _fold_events(before: dict[str, int]) -> dict[str, int]:
    """The fold-table entry is shared by every lexicon of one config: built
    once per cache directory (a miss and a store), or from memory."""
    return {k: v for k, v in delta(before).items() if k.endswith(":fold")}


def test_cached_engine_screens_like_a_fresh_one_on_every_backend(lexdir, tmp_path, backend):
    directory = str(tmp_path / "cache")
    fresh = Engine.build(lexdir, None, backend)  # no cache at all
    Engine.build(lexdir, None, backend, directory)  # fills the cache
    before = stats()
    cached = Engine.build(lexdir, None, backend, directory)
    assert delta(before) == {"hit:lexicon": 1}
    assert cached.matcher_name == fresh.matcher_name
    assert outcome(cached) == outcome(fresh)
    # The lazily decoded tables equal the objects a fresh build makes.
    assert cached.posts.lexicons.rules == tuple(fresh.posts.lexicons.rules)
    assert cached.profiles.lexicons.rules == tuple(fresh.profiles.lexicons.rules)
    assert cached.posts.lexicons.patterns == tuple(fresh.posts.lexicons.patterns)
    assert cached.posts.lexicons.warnings == fresh.posts.lexicons.warnings
    assert cached.posts.lexicons.categories == fresh.posts.lexicons.categories
    # The pinyin spellings come from the entry.
    assert cached.posts.lexicons.pinyin.texts == fresh.posts.lexicons.pinyin.texts
    assert cached.posts.lexicons.pinyin.capped == fresh.posts.lexicons.pinyin.capped
    assert cached.posts.lexicons.pinyin.max_letters == fresh.posts.lexicons.pinyin.max_letters
    # What verification reads from the stored columns, without making rules.
    for view in ("posts", "profiles"):
        rules = list(getattr(fresh, view).lexicons.rules)
        table = getattr(cached, view).lexicons.rules
        assert table.word_checked() == [r.mode == "word" and r.kind != "allow" for r in rules]
        assert table.is_allow() == [r.kind == "allow" for r in rules]
    assert any(cached.posts.lexicons.rules.word_checked()) and any(cached.posts.lexicons.rules.is_allow())


def test_the_shipped_set_and_policy_from_the_cache(tmp_path):
    directory = str(tmp_path / "cache")
    policy = ROOT / "policy" / "default.policy"
    fresh = Engine.build(LEXICONS, policy)
    Engine.build(LEXICONS, policy, "auto", directory)
    before = stats()
    cached = Engine.build(LEXICONS, policy, "auto", directory)
    assert delta(before) == {"hit:lexicon": 1}
    assert outcome(cached) == outcome(fresh)


def test_new_lexicon_content_is_a_new_entry(lexdir, tmp_path):
    directory = tmp_path / "cache"
    first = Engine.build(lexdir, None, "aho", str(directory))
    with open(lexdir / "drugs.txt", "a", encoding="utf-8") as f:
        f.write("摇头丸\n")
    before = stats()
    second = Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before) == {"miss:lexicon": 1, "stored:lexicon": 1}
    assert second.lexicon_version != first.lexicon_version
    assert first.posts.screen(["卖摇头丸"])[0].action == "pass"
    assert second.posts.screen(["卖摇头丸"])[0].action == "flag"
    assert len(entries(directory)) == 2


def test_another_matcher_is_another_entry(lexdir, tmp_path):
    directory = tmp_path / "cache"
    Engine.build(lexdir, None, "aho", str(directory))
    Engine.build(lexdir, None, "oracle", str(directory))
    assert len(entries(directory)) == 2


def test_the_same_files_elsewhere_are_another_entry(lexdir, tmp_path, make_lexicon):
    """Rules carry their file paths (explain, audit): a copy must not report the original's."""
    directory = str(tmp_path / "cache")
    copy = make_lexicon(FILES, MANIFEST)
    Engine.build(lexdir, None, "aho", directory)
    engine = Engine.build(copy, None, "aho", directory)
    assert engine.posts.lexicons.rules[0].path.startswith(str(copy))


@pytest.mark.parametrize("damage", ["truncate", "flip payload byte", "flip header byte", "empty", "garbage"])
def test_a_damaged_entry_is_rebuilt_never_trusted(lexdir, tmp_path, damage, caplog):
    directory = tmp_path / "cache"
    fresh = Engine.build(lexdir, None, "aho", str(directory))
    (entry,) = entries(directory)
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip payload byte":
        data[-100] ^= 0xFF
    elif damage == "flip header byte":
        data[len(cache_module.MAGIC) + 20] ^= 0x01
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(os.urandom(5000))
    entry.write_bytes(bytes(data))
    before = stats()
    with caplog.at_level(logging.WARNING, logger="screener.cache"):
        rebuilt = Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before) == {"bad:lexicon": 1, "stored:lexicon": 1}
    assert "not used" in caplog.text and "rebuilding" in caplog.text
    assert outcome(rebuilt) == outcome(fresh)
    before = stats()
    Engine.build(lexdir, None, "aho", str(directory))  # the rebuilt entry is whole again
    assert delta(before) == {"hit:lexicon": 1}


def test_a_damaged_fold_table_is_rebuilt(lexdir, tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setattr(compiled, "_TABLES", {})  # no table from memory: read the entry
    fresh = Engine.build(lexdir, None, "aho", str(directory))
    (entry,) = entries(directory, "fold")
    data = bytearray(entry.read_bytes())
    data[-7] ^= 0x10
    entry.write_bytes(bytes(data))
    monkeypatch.setattr(compiled, "_TABLES", {})
    before = stats()
    engine = Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before) == {"hit:lexicon": 1, "bad:fold": 1, "stored:fold": 1}
    assert outcome(engine) == outcome(fresh)


@pytest.mark.parametrize("names,read", [
    (b'"names": ["uable"]', "hit:fold"),  # well-formed: read, but it holds no table
    (b'"names": [7]', "bad:fold"), (b'"names": {}  ', "bad:fold"),  # malformed: refused
])
def test_a_fold_table_header_with_damaged_section_names_is_rebuilt(lexdir, tmp_path, monkeypatch, names, read):
    """Found by a hostile-input probe: the digest covers the payload, not the
    header; a flipped bit in the section name made every start fail (exit 70)
    and the entry was never replaced."""
    directory = tmp_path / "cache"
    monkeypatch.setattr(compiled, "_TABLES", {})
    fresh = Engine.build(lexdir, None, "aho", str(directory))
    (entry,) = entries(directory, "fold")
    data = entry.read_bytes()
    assert data.count(b'"names": ["table"]') == 1
    entry.write_bytes(data.replace(b'"names": ["table"]', names))
    monkeypatch.setattr(compiled, "_TABLES", {})
    before = stats()
    engine = Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before) == {"hit:lexicon": 1, read: 1, "stored:fold": 1}
    assert outcome(engine) == outcome(fresh)
    assert b'"names": ["table"]' in entry.read_bytes()  # replaced


def test_a_fifo_named_like_an_entry_is_a_miss_not_a_stall(lexdir, tmp_path):
    """Found by a hostile-input probe: a FIFO in place of an entry blocked
    every command for ever in open()."""
    directory = tmp_path / "cache"
    fresh = Engine.build(lexdir, None, "aho", str(directory))
    (entry,) = entries(directory)
    entry.unlink()
    os.mkfifo(entry, 0o600)
    before = stats()
    engine = Engine.build(lexdir, None, "aho", str(directory))  # a stall here hangs the test
    assert delta(before) == {"bad:lexicon": 1, "stored:lexicon": 1}
    assert outcome(engine) == outcome(fresh)


def test_an_entry_announcing_a_huge_payload_is_refused_unread(lexdir, tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    Engine.build(lexdir, None, "aho", str(directory))
    monkeypatch.setattr(cache_module, "MAX_PAYLOAD", 64)
    before = stats()
    Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before)["bad:lexicon"] == 1


def test_a_whole_entry_whose_content_fails_to_load_is_rebuilt(lexdir, tmp_path):
    """A valid digest over a database Hyperscan refuses (another CPU, another
    library build) is a miss too, found when the entry is loaded."""
    pytest.importorskip("hyperscan")
    directory = tmp_path / "cache"
    fresh = Engine.build(lexdir, None, "hyperscan", str(directory))
    cache = Cache(directory)
    key = compiled._lexicon_key(Path(lexdir), "hyperscan")
    sections = cache.load("lexicon", key)
    assert sections is not None
    damaged = {name: bytes(view) for name, view in sections.items()}
    damaged["hs.database.0"] = b"\x00" * len(damaged["hs.database.0"])
    assert cache.store("lexicon", key, damaged)
    before = stats()
    rebuilt = Engine.build(lexdir, None, "hyperscan", str(directory))
    assert delta(before) == {"bad:lexicon": 1, "stored:lexicon": 1}
    assert outcome(rebuilt) == outcome(fresh)


def test_another_library_version_is_another_key(lexdir, tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    Engine.build(lexdir, None, "aho", str(directory))
    real = compiled.environment()
    monkeypatch.setattr(compiled, "environment", lambda: {**real, "numpy": "0.0-other"})
    before = stats()
    Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before)["miss:lexicon"] == 1
    assert len(entries(directory)) == 2


def test_an_entry_under_the_wrong_key_is_refused(lexdir, tmp_path, monkeypatch, caplog):
    """The file name is a hash of the key; the header's key is compared in full."""
    directory = tmp_path / "cache"
    Engine.build(lexdir, None, "aho", str(directory))
    (entry,) = entries(directory)
    real = compiled.environment()
    other = {**real, "hyperscan": "9.9.9", "cpu": "another cpu"}
    monkeypatch.setattr(compiled, "environment", lambda: other)
    entry.rename(Cache(directory).path("lexicon", compiled._lexicon_key(Path(lexdir), "aho")))
    before = stats()
    with caplog.at_level(logging.WARNING, logger="screener.cache"):
        Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before) == {"bad:lexicon": 1, "stored:lexicon": 1}
    assert "made for another cpu, hyperscan" in caplog.text


def test_code_and_revision_are_in_the_key():
    env = compiled.environment()
    assert {"engine_revision", "code", "python", "unicode", "hyperscan", "pyahocorasick", "opencc", "numpy",
            "cpu", "byteorder"} <= set(env)


def test_no_usable_directory_just_builds(lexdir, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    fresh = Engine.build(lexdir, None, "aho")
    for setting in (str(blocker / "cache"), str(blocker)):
        with caplog.at_level(logging.WARNING, logger="screener.cache"):
            caplog.clear()
            engine = Engine.build(lexdir, None, "aho", setting)
        assert outcome(engine) == outcome(fresh)
        assert len([r for r in caplog.records if r.name == "screener.cache"]) == 1, caplog.text


def test_unwritable_directory_builds_with_one_log_line(lexdir, tmp_path, monkeypatch, caplog):
    """(Root ignores a read-only mode, so the failure is made at the write.)"""
    directory = tmp_path / "cache"

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache_module.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(compiled, "_TABLES", {})
    with caplog.at_level(logging.WARNING, logger="screener.cache"):
        engine = Engine.build(lexdir, None, "aho", str(directory))
    assert engine.posts.screen(["网上赌博"])[0].action != "pass"
    assert [r.getMessage() for r in caplog.records if r.name == "screener.cache"] == [
        f"screener: cannot write the cache in {directory} (Permission denied); building without it"]
    assert list(directory.iterdir()) == []


def test_a_directory_others_can_write_is_refused(lexdir, tmp_path, caplog):
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="screener.cache"):
        Engine.build(lexdir, None, "aho", str(directory))
    assert "writable by group or others" in caplog.text
    assert list(directory.iterdir()) == []


def test_an_entry_others_can_write_is_refused(lexdir, tmp_path, caplog):
    directory = tmp_path / "cache"
    Engine.build(lexdir, None, "aho", str(directory))
    (entry,) = entries(directory)
    entry.chmod(0o666)
    before = stats()
    with caplog.at_level(logging.WARNING, logger="screener.cache"):
        Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before) == {"bad:lexicon": 1, "stored:lexicon": 1}
    assert "writable by group or others" in caplog.text
    (entry,) = entries(directory)
    assert entry.stat().st_mode & 0o077 == 0  # the replacement is private again


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to give a file away")
def test_an_entry_owned_by_someone_else_is_refused(lexdir, tmp_path):
    directory = tmp_path / "cache"
    Engine.build(lexdir, None, "aho", str(directory))
    (entry,) = entries(directory)
    os.chown(entry, 65534, -1)
    before = stats()
    Engine.build(lexdir, None, "aho", str(directory))
    assert delta(before) == {"bad:lexicon": 1, "stored:lexicon": 1}


def test_off_and_none_mean_no_cache(lexdir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for setting in ("off", "OFF", None):
        before = stats()
        Engine.build(lexdir, None, "aho", setting)
        assert not any(k.endswith(":lexicon") for k in delta(before))
    assert not (tmp_path / "xdg").exists()
    assert Cache.from_setting("").directory == tmp_path / "xdg" / "screener"


def test_old_entries_are_pruned(lexdir, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "KEEP_PER_KIND", 2)
    directory = tmp_path / "cache"
    for term in ("甲乙", "丙丁", "戊己"):
        with open(lexdir / "drugs.txt", "a", encoding="utf-8") as f:
            f.write(f"{term}\n")
        Engine.build(lexdir, None, "aho", str(directory))
    assert len(entries(directory)) == 2


def test_the_cli_uses_the_cache_setting(tmp_path, monkeypatch, capsysbinary):
    from screener.cli import main

    directory = tmp_path / "cache"
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": 1, "text": "网上赌*博"}\n', encoding="utf-8")
    monkeypatch.setenv("SCREENER_CACHE_DIR", str(directory))
    assert main(["scan", "--matcher", "aho", str(posts)]) == 0
    first = capsysbinary.readouterr().out
    before = stats()
    assert main(["scan", "--matcher", "aho", str(posts)]) == 0
    assert delta(before) == {"hit:lexicon": 1}
    second = capsysbinary.readouterr().out
    assert b'"action":"recall"' in first
    assert first.replace(first[first.index(b'screened_at'):first.index(b'screened_at') + 40], b"") == \
        second.replace(second[second.index(b'screened_at'):second.index(b'screened_at') + 40], b"")


def test_two_processes_starting_together(tmp_path):
    """Both build (or one loads), both succeed, and the entry left is whole."""
    directory = tmp_path / "cache"
    code = (
        "import sys; from screener.judge import Engine; "
        f"e = Engine.build({str(LEXICONS)!r}, None, 'aho', {str(directory)!r}); "
        "print(e.posts.screen(['网上赌博'])[0].action)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    assert [p.communicate(timeout=120)[0].strip() for p in procs] == ["recall", "recall"]
    assert [p.returncode for p in procs] == [0, 0]
    before = stats()
    Engine.build(LEXICONS, None, "aho", str(directory))
    assert delta(before) == {"hit:lexicon": 1}
    assert not list(directory.glob(".*.tmp"))


def test_jieba_keeps_its_dictionary_cache_in_the_cache_directory(tmp_path):
    segmenter = Segmenter()
    segmenter.use_cache(tmp_path)
    assert segmenter.spanned("这是个大麻烦", 5)
    assert [p.name for p in tmp_path.glob("jieba-*.cache")]


def _plant_empty_dictionary(path: Path) -> None:
    import marshal

    path.write_bytes(marshal.dumps(({}, 0)))


def test_a_jieba_cache_it_did_not_write_is_not_used(tmp_path):
    """Found by a hostile-input probe: jieba loads any marshal file as its
    dictionary; an empty one made 大麻 in 这是个大麻烦 a word of its own."""
    first = Segmenter()
    first.use_cache(tmp_path)
    assert first.spanned("这是个大麻烦", 5)
    (cache,) = tmp_path.glob("jieba-*.cache")
    assert cache.with_name(cache.name + ".sha256").exists()
    _plant_empty_dictionary(cache)
    second = Segmenter()
    second.use_cache(tmp_path)
    assert second.spanned("这是个大麻烦", 5)  # rebuilt from jieba's dictionary, not the planted file
    third = Segmenter()  # and the rebuilt cache is used again
    third.use_cache(tmp_path)
    assert third.spanned("这是个大麻烦", 5) and len(third._get().FREQ) > 100_000


def test_a_jieba_cache_that_cannot_be_written_leaves_no_file_and_no_traceback(tmp_path, monkeypatch, capfd):
    """Found by a hostile-input probe: on a full disk jieba printed a
    traceback on every start and left its partial tmpXXXX file."""
    import errno

    import jieba

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jieba.marshal, "dump", full)
    segmenter = Segmenter()
    segmenter.use_cache(tmp_path)
    assert segmenter.spanned("这是个大麻烦", 5)
    assert "Traceback" not in capfd.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("tmp")] == []


def test_without_a_cache_directory_jieba_never_reads_the_shared_temporary_one(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _plant_empty_dictionary(tmp_path / "jieba.cache")  # jieba's default, which any local user may write
    segmenter = Segmenter()
    assert segmenter.spanned("这是个大麻烦", 5)


def test_lexicon_check_reads_the_fold_table_from_the_cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    env = {**os.environ, "SCREENER_CACHE_DIR": str(directory)}
    run = [sys.executable, "-m", "screener.cli", "lexicon", "check", str(LEXICONS)]
    assert subprocess.run(run, env=env, capture_output=True).returncode == 0
    assert len(entries(directory, "fold")) == 1


def test_startup_benchmark_quick(tmp_path):
    """The start-up benchmark's smoke run (benchmarks/startup.py --quick)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "startup.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| 86 (shipped) |" in result.stdout and "cached" in result.stdout


def test_a_cached_scan_of_one_post_loads_no_numba_and_few_rules(tmp_path, make_lexicon):
    """The cached start stays cheap: no numba (~0.4 s to load) for one post,
    no rule objects beyond the hit's (100k of them took 1.1 s), and the
    pinyin gate's limit from the cache, not from a look-up of every spelling."""
    terms = [f"词{chr(0x4E00 + i)}{chr(0x5E00 + i)}" for i in range(300)]
    lexdir = make_lexicon({"sample": "\n".join(terms) + "\n"})
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": 1, "text": "，%s，"}\n' % terms[7], encoding="utf-8")
    code = (
        "import io, os, sys\n"
        "from screener.cli import _engine\n"
        "from screener.scan import run_scan\n"
        "from screener.settings import Settings\n"
        f"engine = _engine(Settings(lexicons={str(lexdir)!r}, cache_dir={str(tmp_path / 'cache')!r}))\n"
        "out = io.BytesIO()\n"
        f"run_scan(Settings(dead_letter=os.devnull, progress='off'), engine, [{str(posts)!r}], out)\n"
        "made = sum(r is not None for r in engine.posts.lexicons.rules._memo)\n"
        "pinyin = engine.posts.lexicons.pinyin\n"
        "print(b'flag' in out.getvalue(), 'numba' in sys.modules, made, pinyin._lookup is None, pinyin._max_letters)\n"
    )
    env = {**os.environ, "SCREENER_COMPACT": ""}
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)  # fills the cache
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout
    from screener.lexicon import load_lexicons
    from screener.lexicon.pinyin import SYLLABLE

    longest = max(len(t) - t.count(SYLLABLE) for t in load_lexicons(lexdir).pinyin.texts)
    assert out.split() == ["True", "False", "1", "True", str(longest)]


def test_a_set_encoded_for_another_matcher_is_not_stored(lexdir, tmp_path, caplog):
    """The set's part of an entry is encoded while its matcher compiles; it
    is stored only with the matcher it was encoded for."""
    from screener.lexicon import load_lexicons
    from screener.matchers import build_matcher

    cache = Cache(tmp_path / "cache")
    lexicons = load_lexicons(lexdir)
    encoded = compiled.encode_compiled(lexicons, "hyperscan", cache)
    assert encoded is not None and encoded.meta["matcher"] == "hyperscan"
    aho = build_matcher("aho", lexicons.patterns.texts, lexicons.normaliser.table)
    with caplog.at_level(logging.WARNING):
        assert not compiled.store_compiled(lexicons, aho, cache, encoded)
    assert "encoded for matcher hyperscan, not aho" in caplog.text
    assert compiled.store_compiled(lexicons, aho, cache, compiled.encode_compiled(lexicons, "aho", cache))
    assert compiled.load_compiled(lexdir, "aho", cache) is not None


def test_a_lexicon_over_the_split_threshold_is_cached_and_screens_alike(lexdir, tmp_path, monkeypatch):
    """A lexicon large enough for several Hyperscan databases (the threshold
    lowered here) goes through the cache and screens as a fresh build does."""
    pytest.importorskip("hyperscan")
    from screener.matchers import hyperscan_backend

    monkeypatch.setattr(hyperscan_backend, "SPLIT_FROM", 2)
    monkeypatch.setattr(hyperscan_backend, "SHARD_PATTERNS", 4)  # several databases, not just two
    directory = str(tmp_path / "cache")
    fresh = Engine.build(lexdir, None, "hyperscan", directory)
    before = stats()
    cached = Engine.build(lexdir, None, "hyperscan", directory)
    assert delta(before) == {"hit:lexicon": 1}  # loaded, not rebuilt (a review: the test did not look)
    assert len(fresh.posts.matcher._dbs) >= 3
    assert len(cached.posts.matcher._dbs) == len(fresh.posts.matcher._dbs)
    assert outcome(cached) == outcome(fresh) == outcome(Engine.build(lexdir, None, "aho"))

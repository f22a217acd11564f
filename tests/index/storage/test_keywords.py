from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import index.storage.keywords as keywords_module
from index.lexical import Alternative, Concept, Keywords
from index.storage.keywords import (
    FANOUT,
    LAST_TIER,
    SCHEMA,
    Compaction,
    KeywordIndex,
    KeywordTop,
    _full_tiers,
)
from tests.index.reference_bm25 import ReferenceBM25

CHUNKS = {
    10: ["台积", "电", "收盘价", "每股", "美元"],
    11: ["英特尔", "发布", "量子", "芯片"],
    12: ["芯片", "芯片", "出货", "手机"],
    13: ["手机", "市场", "下滑"],
    14: ["电", "台", "广播"],
    15: [],  # ReferenceBM25 gives bm25s [""]: length 1 in its mean length, 0 in the concepts'
    16: ["tsmc", "芯片", "5g", "手机", "手机", "手机"],
}


def connect(path: Path | str = ":memory:") -> sqlite3.Connection:
    """A connection as the store opens it, with the keyword tables."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    if path != ":memory:":
        db.execute("PRAGMA journal_mode = WAL")
    db.executescript(SCHEMA)
    return db


def write(db: sqlite3.Connection, action: Callable[[sqlite3.Connection], object]) -> None:
    """Run a write as the store does: in BEGIN IMMEDIATE … COMMIT, rolled back on an exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        action(db)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    connection = connect()
    yield connection
    connection.close()


def reference(live: dict[int, list[str]]) -> ReferenceBM25:
    ids = sorted(live)
    return ReferenceBM25(np.array(ids, dtype=np.int64), [live[i] for i in ids])


def assert_same_scores(
    index: KeywordIndex, live: dict[int, list[str]], keywords: Keywords, allowed: np.ndarray | None = None
) -> None:
    """The index's scores are ReferenceBM25's over the same live chunks: same chunks, same scores."""
    lexical = reference(live)
    expected = lexical.scores(keywords) if live else np.zeros(0, dtype=np.float32)
    if allowed is not None:
        expected = np.where(np.isin(lexical.chunk_ids, allowed), expected, 0)
    ids, scores = index.search(keywords, allowed)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert list(ids) == list(lexical.chunk_ids[expected > 0])
    np.testing.assert_allclose(scores, expected[expected > 0], rtol=1e-5)


def concept(word: str, *alternatives: tuple[str, float]) -> Concept:
    """A concept whose alternatives are given as space-separated index terms and a weight."""
    return Concept(
        word, tuple(Alternative(text.replace(" ", ""), tuple(text.split()), w) for text, w in alternatives)
    )


QUERIES = [
    Keywords(terms=["芯片"]),
    Keywords(terms=["芯片", "手机", "市场"]),
    Keywords(terms=["手机", "手机", "美元"]),  # bm25s counts a repeated question term twice
    Keywords(terms=["格力", "电"]),  # a term the index lacks counts nothing
    Keywords(concepts=[concept("chip", ("芯片", 1.0))]),
    Keywords(concepts=[concept("device", ("芯片", 1.0), ("手机", 0.5), ("格力", 1.0))]),
    Keywords(concepts=[concept("tsmc", ("台积 电", 1.0), ("tsmc", 0.8)), concept("price", ("收盘价", 0.6))]),
    Keywords(concepts=[concept("phone", ("手机 芯片", 0.9), ("手机", 0.3))]),
    Keywords(terms=["芯片", "发布"], concepts=[concept("phone", ("手机", 1.0), ("5g 手机", 0.7))]),
    Keywords(),
]


@pytest.fixture
def small(db: sqlite3.Connection) -> KeywordIndex:
    index = KeywordIndex(db)
    write(db, lambda db: index.add_many(db, CHUNKS.items()))
    return index


@pytest.mark.parametrize("keywords", QUERIES)
def test_scores_are_those_of_lexical_index_on_a_small_corpus(small: KeywordIndex, keywords: Keywords) -> None:
    assert_same_scores(small, CHUNKS, keywords)


def test_scores_stay_those_of_lexical_index_after_removes_and_compaction(
    db: sqlite3.Connection, small: KeywordIndex
) -> None:
    live = dict(CHUNKS)
    write(db, lambda db: small.remove(db, [12, 15]))
    for chunk_id in (12, 15):
        del live[chunk_id]
    write(db, lambda db: small.add(db, 20, ["芯片", "市场", "市场"]))
    live[20] = ["芯片", "市场", "市场"]
    for keywords in QUERIES:
        assert_same_scores(small, live, keywords)
    write(db, lambda db: small.compact(db, purge=True, budget=None))
    assert db.execute("SELECT COUNT(*) FROM keyword_tombstones").fetchone()[0] == 0
    for keywords in QUERIES:
        assert_same_scores(small, live, keywords)


def test_allowed_restricts_the_chunks_not_the_statistics(small: KeywordIndex) -> None:
    keywords = Keywords(terms=["芯片", "手机"], concepts=[concept("price", ("收盘价", 1.0))])
    for allowed in ([12, 13], [16, 10, 99], [], list(CHUNKS)):
        assert_same_scores(small, CHUNKS, keywords, np.array(allowed, dtype=np.int64))
    ids, _ = small.search(keywords, np.array([13, 12]))
    assert list(ids) == [12, 13]


def assert_top(
    top: KeywordTop,
    live: dict[int, list[str]],
    keywords: Keywords,
    limit: int,
    allowed: np.ndarray | None = None,
    also: Sequence[int] = (),
) -> None:
    """`top` as it is when it reads every posting: the best `limit` chunks in scope and the chunks of
    `also` the keywords match, with ReferenceBM25's scores, and its exact mean and spread over the scope."""
    lexical = reference(live)
    expected = lexical.scores(keywords).astype(np.float64)
    in_scope = np.ones(expected.size, dtype=bool) if allowed is None else np.isin(lexical.chunk_ids, allowed)
    expected = np.where(in_scope, expected, 0.0)
    score = dict(zip(lexical.chunk_ids.tolist(), expected.tolist(), strict=True))
    matched = {chunk_id for chunk_id, value in score.items() if value > 0}
    returned = top.ids.tolist()
    assert top.exact
    assert returned == sorted(returned) and set(returned) <= matched
    np.testing.assert_allclose(top.scores, [score[chunk_id] for chunk_id in returned], rtol=1e-5)
    asked = matched & set(also)
    assert asked <= set(returned) and len(set(returned) - asked) <= limit
    ranked = sorted((score[chunk_id] for chunk_id in matched), reverse=True)
    if len(ranked) > limit:
        assert all(score[chunk_id] <= ranked[limit - 1] + 1e-6 for chunk_id in matched - set(returned))
    else:
        assert set(returned) == matched
    assert top.mean == pytest.approx(expected[in_scope].mean(), rel=1e-5, abs=1e-9)
    assert top.spread == pytest.approx(expected[in_scope].std(), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("keywords", QUERIES)
def test_top_within_its_read_budget_is_exact(small: KeywordIndex, keywords: Keywords) -> None:
    for limit, allowed, also in [
        (2, None, ()),
        (1, None, (13, 14, 99)),
        (3, np.array([11, 12, 16]), (10, 12)),
    ]:
        top = small.top(keywords, limit, allowed, np.array(also, dtype=np.int64))
        assert_top(top, CHUNKS, keywords, limit, allowed, also)


def test_top_of_keywords_that_match_nothing_is_empty(small: KeywordIndex) -> None:
    for keywords in [Keywords(), Keywords(terms=["格力"]), Keywords(concepts=[concept("x", ("格力", 1.0))])]:
        top = small.top(keywords, 5, also=np.array([10, 11]))
        assert top.ids.size == 0 and top.mean == 0.0 and top.spread == 0.0


def common_and_rare(size: int) -> dict[int, list[str]]:
    """Chunks that nearly all hold 芯片, some 手机 as well, and a few the rare 量子."""
    rng = random.Random(size)
    return {
        chunk_id: ["芯片"] * rng.randint(1, 3)
        + ["手机"] * (rng.random() < 0.3)
        + ["量子"] * (chunk_id % 50 == 0)
        + [rng.choice("甲乙丙丁戊己庚辛") for _ in range(rng.randint(0, 8))]
        for chunk_id in range(size)
    }


def test_top_beyond_its_read_budget_looks_common_terms_up_for_the_competing_chunks(
    db: sqlite3.Connection,
) -> None:
    live = common_and_rare(1000)
    # The rare term's chunks: of distinct lengths, so that it ranks them without ties.
    for position, chunk_id in enumerate(range(0, 1000, 50)):
        live[chunk_id] = [
            "量子",
            *["芯片"] * (position % 3 + 1),
            *["手机"] * (position % 2),
            *["甲"] * (4 * position),
        ]
    write(db, lambda db: KeywordIndex(db).add_many(db, live.items()))
    keywords = Keywords(terms=["量子", "芯片", "手机"])
    exact = reference(live).scores(keywords)
    rare = np.arange(0, 1000, 50)
    # Only the rarest term is read in full; 芯片 and 手机 are added to the chunks that compete: the rare
    # term's, and those asked about. A chunk without the rare term scores at most idf(芯片) + idf(手机),
    # less than the fifth best here: the top is exact.
    top = KeywordIndex(db, read_budget=1).top(keywords, 5, also=np.array([1, 2, 3]))
    assert not top.exact
    best = rare[np.argsort(-exact[rare], kind="stable")[:5]]
    assert np.sort(exact)[-5] > exact[np.setdiff1d(np.arange(1000), rare)].max()
    assert set(top.ids) == set(best) | {1, 2, 3}
    np.testing.assert_allclose(top.scores, exact[top.ids], rtol=1e-5)
    # Read in full, the common terms' chunks compete too: the budget bounds what is read, not the scores.
    assert_top(KeywordIndex(db).top(keywords, 5, also=np.array([1, 2, 3])), live, keywords, 5, also=(1, 2, 3))


def test_beyond_its_read_budget_the_pool_widens_to_every_chunk_the_looked_up_terms_could_lift(
    db: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = common_and_rare(1000)
    filler = ["甲"] * 6  # every rare chunk of one length: the rare term ranks them by its frequency alone
    for position, chunk_id in enumerate(range(0, 1000, 50)):
        live[chunk_id] = ["量子"] * (2 if position < 10 else 1) + filler
    lifted = 950
    live[lifted] = ["量子", "手机", "手机", "手机", *filler[3:]]
    write(db, lambda db: KeywordIndex(db).add_many(db, live.items()))
    keywords = Keywords(terms=["量子", "手机"])
    exact = reference(live).scores(keywords)
    alone = reference(live).scores(Keywords(terms=["量子"]))
    assert exact.argmax() == lifted and (alone > alone[lifted]).sum() >= 10
    # The first pool, the best six by the rare term for a top 3, misses it; the widened pool holds it.
    assert keywords_module.POOL * 3 < 10 <= keywords_module.POOL_MAX * 3
    assert lifted in KeywordIndex(db, read_budget=1).top(keywords, 3).ids
    monkeypatch.setattr(keywords_module, "POOL_MAX", keywords_module.POOL)
    assert lifted not in KeywordIndex(db, read_budget=1).top(keywords, 3).ids


def test_beyond_its_read_budget_the_mean_and_spread_are_estimated_from_samples(
    db: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = common_and_rare(4000)
    write(db, lambda db: KeywordIndex(db).add_many(db, live.items()))
    monkeypatch.setattr(keywords_module, "MOMENT_SAMPLE", 2000)  # about a fifth of the postings
    keywords = Keywords(terms=["量子", "芯片", "手机"])
    allowed = np.arange(0, 4000, 3)
    for scope in (None, allowed):
        exact = reference(live).scores(keywords).astype(np.float64)
        if scope is not None:
            exact = exact[scope]
        top = KeywordIndex(db, read_budget=1).top(keywords, 5, scope)
        assert top.mean == pytest.approx(exact.mean(), rel=0.05)
        assert top.spread == pytest.approx(exact.std(), rel=0.05)


def test_a_concept_beyond_the_read_budget_is_scored_with_at_most_its_document_frequency(
    db: sqlite3.Connection,
) -> None:
    live = common_and_rare(1000)
    write(db, lambda db: KeywordIndex(db).add_many(db, live.items()))
    overlapping = Keywords(terms=["量子"], concepts=[concept("chip", ("芯片", 1.0), ("手机", 0.5))])
    single = Keywords(terms=["量子"], concepts=[concept("quantum", ("量子 芯片", 0.5))])
    also = np.arange(0, 1000, 7)
    for keywords in (overlapping, single):
        exact = reference(live).scores(keywords)
        top = KeywordIndex(db, read_budget=1).top(keywords, 5, also=also)
        assert not top.exact and set(also[exact[also] > 0]) <= set(top.ids)
        # The chunks matching its alternatives, counted once per alternative: as many or more than match
        # the concept, so its idf is as low or lower; equal when no chunk holds two alternatives (one alone, here).
        assert (top.scores <= exact[top.ids] * (1 + 1e-5)).all()
        if keywords is overlapping:
            assert (top.scores < exact[top.ids]).any()
        else:
            np.testing.assert_allclose(top.scores, exact[top.ids], rtol=1e-5)


def test_match_scores_are_those_of_lexical_index(db: sqlite3.Connection, small: KeywordIndex) -> None:
    texts = ["英特尔发布量子芯片。", "手机市场下滑。", "天气晴朗。", "台积电收盘价", "TSMC 的 5G 手机", ""]
    for keywords in [*QUERIES, Keywords(terms=["芯片", "下滑", "天气"])]:
        np.testing.assert_allclose(
            small.match_scores(texts, keywords), reference(CHUNKS).match_scores(texts, keywords), rtol=1e-5
        )
    write(db, lambda db: small.remove(db, [11]))
    live = {k: v for k, v in CHUNKS.items() if k != 11}
    keywords = Keywords(terms=["英特尔", "芯片"], concepts=[concept("chip", ("芯片", 1.0), ("量子", 0.5))])
    np.testing.assert_allclose(
        small.match_scores(texts, keywords), reference(live).match_scores(texts, keywords)
    )


def test_vocabulary_is_chinese_follows_adds_and_removes(db: sqlite3.Connection) -> None:
    index = KeywordIndex(db)
    assert not index.vocabulary_is_chinese()  # empty: as ReferenceBM25, a share of 0
    write(db, lambda db: index.add(db, 1, ["apple", "iphone", "sales"]))
    assert not index.vocabulary_is_chinese()
    write(db, lambda db: index.add(db, 2, ["苹果", "销量", "iphone"]))
    assert not index.vocabulary_is_chinese()  # 2 Chinese of 5 distinct terms
    write(db, lambda db: index.add(db, 3, ["手机", "销量"]))
    assert index.vocabulary_is_chinese()  # 3 of 6
    write(db, lambda db: index.remove(db, [3]))
    assert not index.vocabulary_is_chinese()  # 手机 gone, 销量 still in chunk 2
    write(db, lambda db: index.remove(db, [1]))
    assert index.vocabulary_is_chinese()  # 苹果 销量 iphone
    write(db, lambda db: index.compact(db, purge=True, budget=None))
    assert index.vocabulary_is_chinese()
    assert index.chunk_count() == 1


def test_an_empty_index_finds_nothing(db: sqlite3.Connection) -> None:
    index = KeywordIndex(db)
    ids, scores = index.search(Keywords(terms=["芯片"], concepts=[concept("chip", ("芯片", 1.0))]))
    assert ids.shape == scores.shape == (0,)
    assert index.match_scores(["芯片"], Keywords(terms=["芯片"])).tolist() == [0.0]
    write(db, lambda db: index.add(db, 1, ["芯片"]))
    write(db, lambda db: index.clear(db))
    assert index.chunk_count() == 0
    assert index.search(Keywords(terms=["芯片"]))[0].size == 0
    write(db, lambda db: index.add(db, 1, ["手机"]))  # ids free again after a clear
    assert_same_scores(index, {1: ["手机"]}, Keywords(terms=["手机", "芯片"]))


def test_mostly_empty_chunks_count_as_lexical_index_counts_them(db: sqlite3.Connection) -> None:
    # Mean length 0.25: bm25s takes 0.5 (an empty chunk is [""], of length 1), concepts take 1 (at least).
    index = KeywordIndex(db)
    live: dict[int, list[str]] = {1: [], 2: [], 3: [], 4: ["芯片"]}
    write(db, lambda db: index.add_many(db, live.items()))
    for keywords in [Keywords(terms=["芯片"]), Keywords(concepts=[concept("chip", ("芯片", 0.7))])]:
        assert_same_scores(index, live, keywords)
    assert_same_scores(index, live, Keywords(terms=["芯片"]), np.array([4, 4, 2, 9, 1]))  # unsorted, repeats


def test_scores_persist_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    first = connect(path)
    index = KeywordIndex(first)
    write(first, lambda db: index.add_many(db, CHUNKS.items()))
    write(first, lambda db: index.remove(db, [13]))
    before = [index.search(keywords) for keywords in QUERIES]
    first.close()

    second = connect(path)  # SCHEMA again: idempotent, keeps everything
    reopened = KeywordIndex(second)
    live = {k: v for k, v in CHUNKS.items() if k != 13}
    for keywords, (ids, scores) in zip(QUERIES, before, strict=True):
        again = reopened.search(keywords)
        assert list(again[0]) == list(ids)
        np.testing.assert_array_equal(again[1], scores)
        assert_same_scores(reopened, live, keywords)
    assert reopened.chunk_count() == len(live)
    second.close()


@pytest.mark.parametrize("read_inside", [False, True])
def test_a_write_rolled_back_leaves_the_scores_as_they_were(
    db: sqlite3.Connection, small: KeywordIndex, read_inside: bool
) -> None:
    keywords = Keywords(terms=["芯片", "手机"], concepts=[concept("market", ("市场", 1.0))])
    before = small.search(keywords)

    def failing(db: sqlite3.Connection) -> None:
        small.remove(db, [11, 12])
        small.add(db, 30, ["芯片", "芯片", "市场"])
        small.compact(db, purge=True)
        if read_inside:  # caches filled with what is about to be rolled back
            assert 30 in small.search(keywords)[0]
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        write(db, failing)
    after = small.search(keywords)
    assert list(after[0]) == list(before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert_same_scores(small, CHUNKS, keywords)
    # The same writes, committed this time (the sequence numbers of the rolled-back ones are given again).
    write(db, lambda db: (small.remove(db, [11, 12]), small.add(db, 30, ["芯片", "芯片", "市场"])))
    live = {k: v for k, v in CHUNKS.items() if k not in (11, 12)} | {30: ["芯片", "芯片", "市场"]}
    assert_same_scores(small, live, keywords)


def test_a_write_by_another_connection_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    reader_db, writer_db = connect(path), connect(path)
    reader, writer = KeywordIndex(reader_db), KeywordIndex(writer_db)
    write(writer_db, lambda db: writer.add_many(db, CHUNKS.items()))
    keywords = Keywords(terms=["芯片"], concepts=[concept("phone", ("手机", 1.0))])
    assert_same_scores(reader, CHUNKS, keywords)  # caches filled
    write(writer_db, lambda db: writer.remove(db, [12]))
    write(writer_db, lambda db: writer.add(db, 40, ["手机", "芯片"]))
    live = {k: v for k, v in CHUNKS.items() if k != 12} | {40: ["手机", "芯片"]}
    assert_same_scores(reader, live, keywords)
    reader_db.close()
    writer_db.close()


def test_a_chunk_id_indexed_again_after_its_removal_is_live_again(
    db: sqlite3.Connection, small: KeywordIndex
) -> None:
    write(db, lambda db: small.remove(db, [12]))
    write(db, lambda db: small.add(db, 12, ["芯片", "广播"]))
    live = CHUNKS | {12: ["芯片", "广播"]}
    for keywords in QUERIES:
        assert_same_scores(small, live, keywords)
    # A later removal makes its new block older than the newest tombstone: still live, as added after its own.
    write(db, lambda db: small.remove(db, [13]))
    live.pop(13)
    for keywords in QUERIES:
        assert_same_scores(small, live, keywords)
    write(db, lambda db: small.compact(db, purge=True, budget=None))  # merged: old posting gone, new kept
    for keywords in QUERIES:
        assert_same_scores(small, live, keywords)
    write(db, lambda db: small.remove(db, [12]))  # its second removal kills its second postings too
    live.pop(12)
    for keywords in QUERIES:
        assert_same_scores(small, live, keywords)


def test_writes_must_run_in_a_transaction_and_ids_are_unique(
    db: sqlite3.Connection, small: KeywordIndex
) -> None:
    with pytest.raises(RuntimeError, match="transaction"):
        small.add(db, 50, ["芯片"])
    with pytest.raises(ValueError, match="already indexed"):
        write(db, lambda db: small.add(db, 10, ["芯片"]))
    with pytest.raises(ValueError, match="twice"):
        write(db, lambda db: small.add_many(db, [(51, ["a"]), (51, ["b"])]))
    write(db, lambda db: small.remove(db, [999]))  # not indexed: ignored
    assert_same_scores(small, CHUNKS, Keywords(terms=["芯片"]))


# -- random corpora -------------------------------------------------------------------------------


def vocabulary(rng: random.Random, size: int) -> list[str]:
    chinese = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可也你"
    words = {
        "".join(rng.choice(chinese) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.7
        else rng.choice(["5g", "ai", "chip", "tsmc", "x"]) + str(rng.randint(0, 30))
        for _ in range(size * 2)
    }
    return sorted(words)[:size]


def random_chunk(rng: random.Random, words: list[str]) -> list[str]:
    if rng.random() < 0.05:
        return []
    # Zipf-like: low ranks are common, so terms repeat within chunks and across them.
    return [words[min(int(rng.paretovariate(1.1)) - 1, len(words) - 1)] for _ in range(rng.randint(1, 25))]


def random_keywords(rng: random.Random, words: list[str]) -> Keywords:
    def word() -> str:
        return rng.choice(words) if rng.random() < 0.9 else "未知"

    concepts = [
        Concept(
            f"c{i}",
            tuple(
                Alternative(
                    f"a{j}", tuple(word() for _ in range(rng.choice([1, 1, 2, 3]))), rng.uniform(0.1, 1.0)
                )
                for j in range(rng.randint(1, 4))
            ),
        )
        for i in range(rng.randint(0, 2))
    ]
    return Keywords(terms=[word() for _ in range(rng.randint(0, 4))], concepts=concepts)


@pytest.mark.parametrize("seed", range(5))
def test_scores_are_those_of_lexical_index_on_random_corpora(db: sqlite3.Connection, seed: int) -> None:
    rng = random.Random(seed)
    words = vocabulary(rng, 60)
    index = KeywordIndex(db)
    live: dict[int, list[str]] = {}
    next_id = 1
    queries = [random_keywords(rng, words) for _ in range(12)]
    for step in range(40):
        action = rng.random()
        if action < 0.55 or not live:  # a document of a few chunks
            document = {next_id + i: random_chunk(rng, words) for i in range(rng.randint(1, 6))}
            next_id += len(document)
            write(db, lambda db, document=document: index.add_many(db, document.items()))
            live |= document
        elif action < 0.85:
            gone = rng.sample(sorted(live), min(len(live), rng.randint(1, 5)))
            write(db, lambda db, gone=gone: index.remove(db, gone))
            for chunk_id in gone:
                del live[chunk_id]
        else:  # a budget of 1: one term a call, so purges stretch over writes
            budget = rng.choice([1, 50, None])
            write(db, lambda db, budget=budget: index.compact(db, purge=rng.random() < 0.5, budget=budget))
        if step % 8 == 7:
            for keywords in queries:
                assert_same_scores(index, live, keywords)
    write(db, lambda db: index.compact(db))
    allowed = np.array(rng.sample(sorted(live), len(live) // 2), dtype=np.int64)
    texts = ["".join(rng.sample(words, 5)) for _ in range(6)]
    for keywords in queries:
        assert_same_scores(index, live, keywords)
        assert_same_scores(index, live, keywords, allowed)
        np.testing.assert_allclose(
            index.match_scores(texts, keywords), reference(live).match_scores(texts, keywords), rtol=1e-5
        )
    assert index.chunk_count() == len(live)
    assert_consistent(db)


WORDS = list("甲乙丙丁戊ab")
chunks = st.lists(st.sampled_from(WORDS), max_size=6)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(chunks, min_size=1, max_size=3)),
        st.tuples(st.just("add again"), st.integers(0, 30), chunks),  # a removed chunk's id
        st.tuples(st.just("remove"), st.lists(st.integers(0, 30), min_size=1, max_size=3)),
        st.tuples(st.just("compact"), st.booleans(), st.sampled_from([1, 3, None])),
    ),
    max_size=25,
)


@settings(max_examples=30, deadline=None)
@given(operations=operations, seed=st.integers(0, 1000))
def test_any_sequence_of_writes_scores_as_lexical_index(operations: list[tuple[Any, ...]], seed: int) -> None:
    db = connect()
    index = KeywordIndex(db)
    live: dict[int, list[str]] = {}
    next_id = 0
    rng = random.Random(seed)
    queries = [random_keywords(rng, WORDS) for _ in range(4)]
    for operation in operations:
        match operation:
            case ("add", new):
                document = {next_id + i: list(chunk) for i, chunk in enumerate(new)}
                next_id += len(document)
                write(db, lambda db, document=document: index.add_many(db, document.items()))
                live |= document
            case ("add again", chunk_id, chunk) if chunk_id < next_id and chunk_id not in live:
                write(db, lambda db, chunk_id=chunk_id, chunk=chunk: index.add(db, chunk_id, chunk))
                live[chunk_id] = chunk
            case ("remove", gone):
                write(db, lambda db, gone=gone: index.remove(db, gone))
                for chunk_id in gone:
                    live.pop(chunk_id, None)
            case ("compact", purge, budget):
                write(
                    db, lambda db, purge=purge, budget=budget: index.compact(db, purge=purge, budget=budget)
                )
        assert_same_scores(index, live, queries[len(live) % len(queries)])
    for keywords in queries:
        assert_same_scores(index, live, keywords)
    assert index.vocabulary_is_chinese() == (reference(live).chinese_share >= 0.5)
    assert index.chunk_count() == len(live)
    assert_consistent(db)
    db.close()


def assert_consistent(db: sqlite3.Connection) -> None:
    """The stored counters agree with the rows they count."""
    stats = db.execute("SELECT * FROM keyword_stats").fetchone()
    chunks = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(length), 0), COUNT(*) FILTER (WHERE length = 0) FROM keyword_chunks"
    )
    assert tuple(chunks.fetchone()) == (stats["chunks"], stats["length"], stats["empty"])
    for row in db.execute("SELECT term_id, df, entries, fresh FROM keyword_terms"):
        entries, blocks = db.execute(
            "SELECT COALESCE(SUM(n), 0), COUNT(*) FROM keyword_blocks WHERE term_id = ?", (row["term_id"],)
        ).fetchone()
        assert entries == row["entries"] >= row["df"] >= 0
        assert blocks >= row["fresh"]
    live_terms = db.execute("SELECT COUNT(*) FROM keyword_terms WHERE df > 0").fetchone()[0]
    assert live_terms == stats["terms"]


# -- cost -----------------------------------------------------------------------------------------


def build(
    db: sqlite3.Connection, index: KeywordIndex, chunks: int, words: list[str], rng: random.Random
) -> None:
    """`chunks` chunks in documents of 10, compacted as a store would after each write."""
    for start in range(0, chunks, 10):
        document = [(1_000_000 + start + i, random_chunk(rng, words)) for i in range(10)]
        write(db, lambda db, document=document: (index.add_many(db, document), index.compact(db)))


def traced(db: sqlite3.Connection, action: Callable[[sqlite3.Connection], object]) -> tuple[int, int]:
    """Statements run by a write, and the characters of their SQL with values (blobs included)."""
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    try:
        write(db, action)
    finally:
        db.set_trace_callback(None)
    return len(statements), sum(len(statement) for statement in statements)


def test_an_add_or_a_remove_costs_what_its_chunks_hold_whatever_the_index_holds() -> None:
    rng = random.Random(7)
    words = vocabulary(rng, 300)
    document = [(i, [*random_chunk(random.Random(i), words), "新词"]) for i in range(1, 11)]
    distinct = len({term for _, chunk in document for term in chunk})
    costs = {}
    for size in (100, 2000):
        db = connect()
        index = KeywordIndex(db)
        build(db, index, size, words, random.Random(size))
        added = traced(db, lambda db, index=index: index.add_many(db, document))
        removed = traced(db, lambda db, index=index: index.remove(db, [chunk_id for chunk_id, _ in document]))
        costs[size] = (added, removed)
        db.close()
    (add_small, remove_small), (add_large, remove_large) = costs[100], costs[2000]
    # One statement per distinct term and per chunk, and a few more: not one more for a larger index.
    assert add_small[0] == add_large[0] <= 2 * distinct + 10 + 8
    assert remove_small[0] == remove_large[0] <= distinct + 8
    # The bytes written too (ids have as many digits in both indexes): no posting list is rewritten.
    assert add_large[1] < 1.1 * add_small[1]
    assert remove_large[1] < 1.1 * remove_small[1]


def test_compaction_keeps_few_blocks_per_term_and_drops_dead_postings(db: sqlite3.Connection) -> None:
    index = KeywordIndex(db)
    for document in range(200):
        write(db, lambda db, document=document: index.add(db, document, ["常见", f"罕见{document}"]))
        if index.compaction_due():
            write(db, index.compact)
    blocks = db.execute(
        "SELECT COUNT(*) FROM keyword_blocks b JOIN keyword_terms t USING (term_id) WHERE t.term = '常见'"
    ).fetchone()[0]
    # 200 postings: blocks of 64, 8 and 1 (FANOUT - 1 at most of each size), FANOUT - 1 not merged yet.
    assert blocks <= 4 * (FANOUT - 1)
    assert not index.compaction_due()
    write(db, lambda db: index.remove(db, range(0, 150)))
    # More dead postings than live ones: those terms are due (the rare words of the removed chunks too).
    assert index.compaction_due()
    report = None

    def compact(db: sqlite3.Connection) -> None:
        nonlocal report
        report = index.compact(db, purge=True, budget=None)

    write(db, compact)
    assert report is not None and report.purged and report.dead_dropped == 300
    assert db.execute("SELECT COUNT(*) FROM keyword_terms").fetchone()[0] == 51  # 罕见0…罕见149 forgotten
    assert db.execute("SELECT COUNT(*) FROM keyword_tombstones").fetchone()[0] == 0
    assert_consistent(db)
    live = {document: ["常见", f"罕见{document}"] for document in range(150, 200)}
    assert_same_scores(index, live, Keywords(terms=["常见", "罕见170", "罕见20"]))


def test_a_purge_spread_over_writes_forgets_only_the_chunks_removed_before_it_began(
    db: sqlite3.Connection,
) -> None:
    index = KeywordIndex(db)
    common = [f"常用{i}" for i in range(10)]
    live = {1000: list(common)}  # first: the common words get the lowest term ids, 1 to 10
    live |= {chunk_id: [common[chunk_id % 10], f"独有{chunk_id}"] for chunk_id in range(100)}
    write(db, lambda db: index.add_many(db, live.items()))
    write(db, lambda db: index.remove(db, range(10)))  # a dead posting in each common word
    for chunk_id in range(10):
        del live[chunk_id]

    def compact(purge: bool = False) -> Compaction:
        reports: list[Compaction] = []
        write(db, lambda db: reports.append(index.compact(db, purge=purge, budget=1)))  # one term a call
        return reports[0]

    def cursor() -> int:
        return db.execute("SELECT cursor FROM keyword_stats").fetchone()[0]

    assert not compact(purge=True).purged
    for _ in range(100):
        if cursor() >= 10:
            break
        assert not compact().purged
    assert cursor() == 10 and index.compaction_due()
    # Removed and added meanwhile: their common words were passed already, so only their (newer)
    # tombstones keep them out; the purge must not forget them.
    write(db, lambda db: index.remove(db, [61, 63]))
    write(db, lambda db: index.add(db, 200, ["常用1", "新"]))
    live = {k: v for k, v in live.items() if k not in (61, 63)} | {200: ["常用1", "新"]}
    for _ in range(100):
        assert_same_scores(index, live, Keywords(terms=["常用1", "常用3", "独有61", "新"]))
        if compact().purged:
            break
    tombstones = db.execute("SELECT chunk_ids FROM keyword_tombstones").fetchall()
    assert [np.frombuffer(row[0], dtype="<i8").tolist() for row in tombstones] == [[61, 63]]
    assert db.execute("SELECT tombstones, purging FROM keyword_stats").fetchone()[:] == (2, 0)
    for keywords in [Keywords(terms=[word]) for word in [*common, "独有61", "独有62", "新"]]:
        assert_same_scores(index, live, keywords)
    assert_consistent(db)


def test_ids_and_counts_beyond_the_narrow_layout_are_stored_wide(db: sqlite3.Connection) -> None:
    index = KeywordIndex(db)
    live = {2**40: ["芯片"] * 70_000 + ["手机"], 5: ["芯片", "手机"], 6: ["手机"]}
    write(db, lambda db: index.add_many(db, live.items()))
    write(db, lambda db: index.add(db, 7, ["芯片", "芯片"]))  # a narrow block
    keywords = Keywords(terms=["芯片", "手机"], concepts=[concept("chip", ("芯片", 0.5), ("芯片 手机", 1.0))])
    assert_same_scores(index, live | {7: ["芯片", "芯片"]}, keywords)
    write(db, lambda db: index.remove(db, [5, 7]))  # 芯片: more dead postings than live ones
    write(db, lambda db: index.compact(db))  # its wide and narrow blocks merged: wide
    (n, size), *others = db.execute(
        "SELECT n, LENGTH(data) FROM keyword_blocks JOIN keyword_terms USING (term_id) WHERE term = '芯片'"
    ).fetchall()
    assert (n, size, others) == (1, 16, [])
    assert_same_scores(index, {2**40: live[2**40], 6: live[6]}, keywords)


def test_blocks_merge_by_size_tier_up_to_the_last() -> None:
    small = dict.fromkeys(range(FANOUT), 1)
    assert _full_tiers(small) == [list(range(FANOUT))]
    assert _full_tiers(dict.fromkeys(range(FANOUT - 1), 1)) == []
    # FANOUT - 1 blocks of 8 and FANOUT of 1: the small ones make one more of 8, and then those all merge.
    mixed = dict.fromkeys(range(FANOUT - 1), FANOUT) | dict.fromkeys(range(100, 100 + FANOUT), 1)
    assert [sorted(group) for group in _full_tiers(mixed)] == [sorted(mixed)]
    # Blocks of the last tier stay as they are, however many.
    assert _full_tiers(dict.fromkeys(range(3 * FANOUT), FANOUT**LAST_TIER)) == []


def test_a_merge_keeps_a_chunk_indexed_again_after_its_removal(db: sqlite3.Connection) -> None:
    index = KeywordIndex(db)
    live = {chunk_id: ["常见", f"其他{chunk_id}"] for chunk_id in range(FANOUT - 1)}
    for chunk_id, chunk in live.items():  # FANOUT - 1 blocks of 常见
        write(db, lambda db, chunk_id=chunk_id, chunk=chunk: index.add(db, chunk_id, chunk))
    write(db, lambda db: index.remove(db, [3]))
    write(
        db, lambda db: index.add(db, 3, ["常见", "常见"])
    )  # the FANOUT-th block: older ones hold its old posting
    live[3] = ["常见", "常见"]
    reports: list[Compaction] = []
    write(db, lambda db: reports.append(index.compact(db)))
    assert reports[0].dead_dropped == 2  # chunk 3's old postings (常见, 其他3), not its new one
    assert db.execute("SELECT COUNT(*) FROM keyword_blocks WHERE n = ?", (FANOUT - 1,)).fetchone()[0] == 1
    assert_same_scores(index, live, Keywords(terms=["常见"]))
    assert_consistent(db)


def test_a_full_term_cache_is_started_afresh_without_losing_the_terms_asked(
    small: KeywordIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A question whose terms overflow the cache while some of them are already cached.
    monkeypatch.setattr(keywords_module, "TERM_CACHE", 3)
    assert_same_scores(small, CHUNKS, Keywords(terms=["芯片", "手机"]))
    chip_or_phone = Concept("device", (Alternative("芯片", ("芯片",), 1.0), Alternative("电", ("电",), 0.5)))
    assert_same_scores(small, CHUNKS, Keywords(terms=["芯片", "市场"], concepts=[chip_or_phone]))


def test_an_index_without_frequencies_in_its_chunk_rows_gets_them_from_the_postings(
    db: sqlite3.Connection,
) -> None:
    """Format 3 kept term frequencies in the posting lists only; the upgrade copies them to the rows."""
    live = common_and_rare(300)
    index = KeywordIndex(db)
    write(db, lambda db: index.add_many(db, live.items()))
    write(db, lambda db: index.remove(db, [5, 6, 7]))
    write(db, lambda db: index.add(db, 6, ["量子", "量子", "甲"]))  # an id indexed again
    chunk_ids = np.arange(0, 300, dtype=np.int64)
    term_ids = [row[0] for row in db.execute("SELECT term_id FROM keyword_terms ORDER BY term_id")]
    before = index._frequencies(chunk_ids, term_ids)
    write(db, lambda db: db.execute("ALTER TABLE keyword_chunks DROP COLUMN frequencies"))
    write(db, index.add_frequencies)
    after = index._frequencies(chunk_ids, term_ids)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert before[0][6].sum() == 3 and not before[0][5].any()
    write(db, index.add_frequencies)  # once only
    np.testing.assert_array_equal(index._frequencies(chunk_ids, term_ids)[0], after[0])

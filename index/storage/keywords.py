"""Keyword search stored with the documents and updated in place: BM25 posting lists in SQLite.

Scores are exactly those of an in-memory BM25 over the live chunks (`tests/index/reference_bm25.py`) (plain terms as bm25s scores
them, concepts as a Pirkola structured query, `match_scores` for sentences), but nothing is rebuilt after a
write and nothing is held per chunk in memory: `search` reads the posting lists of the question's terms
only, `top` those of its rarer terms up to a budget (looking the commonest up in the chunks that compete),
and an add or a remove writes rows in proportion to the chunks it adds or removes.

Tables (`SCHEMA`), written inside the caller's transactions so they always agree with the chunk rows:

- `keyword_terms`: one row per term: its live document frequency (`df`), the postings stored for it,
  live or dead (`entries`, so `entries - df` are dead), and the blocks written for it since `compact`
  last looked at it (`fresh`).
- `keyword_blocks`: a term's postings in blocks of packed arrays (chunk ids, term frequencies, chunk
  lengths), read with `np.frombuffer`; stored in the order written (an add appends its blocks together,
  only the index by term takes random inserts). An add writes one block per distinct term of its chunks; `compact` merges blocks of similar sizes `FANOUT` at a time up to a size (`LAST_TIER`), so
  each posting is rewritten a bounded number of times and a term keeps about FANOUT blocks per size tier,
  plus one per 32k-262k postings.
- `keyword_chunks`: each live chunk's length, distinct term ids and their frequencies: what a remove needs
  to correct the frequencies and totals without reading any posting list, and what `top` looks a common
  term up in.
- `keyword_tombstones`: the chunks each remove took out. A posting is dead when its chunk was removed by a
  write later than the one that wrote the posting's block (so a chunk id indexed again is live again).
  Searches skip dead postings; `compact` drops those of the blocks it merges, and once removed chunks
  reach 1/`PURGE_SHARE` of the live ones it purges them all, a few terms per call, then forgets the
  tombstones older than the purge.
- `keyword_stats`: one row of totals (chunks, summed lengths, empty chunks, vocabulary and its Chinese
  part, tombstones), where a purge stands, the sequence number of the last write, and a random stamp
  every write renews.

Writes cost what their chunks hold; `compact`'s work is amortised: each posting is rewritten at most
`LAST_TIER` times by merges, and a purge, spread over calls (`COMPACT_BUDGET`), is paid for by the
removals that called for it.

Caches (totals, tombstones, terms' ids and frequencies, the last `CONCEPT_CACHE` concepts' frequencies and
usable alternatives) are checked against the stamp at every read, so a write of this connection, another
process's write, or a write rolled back is never answered from a stale cache; `invalidate()` drops them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import NamedTuple

import numpy as np

from index.lexical import (
    Concept,
    Keywords,
    Part,
    concept_scores,
    idf,
    match_scores,
    part_scores,
    term_scores,
)
from index.text import has_chinese

# Blocks of a size tier merged into one by `compact`: more means fewer rewrites of each posting (one per
# tier climbed) but more blocks read per term by a search (up to FANOUT - 1 per tier, and as many new).
FANOUT = 8
# Blocks of this tier (FANOUT**LAST_TIER = 32,768 postings) or more are merged no further: a posting is
# rewritten at most LAST_TIER times, so what an add costs in merges does not grow with the index, and a
# term in a million chunks is read in about 10 to 30 blocks.
LAST_TIER = 5
# `compact` drops every dead posting (and forgets the tombstones) once removed chunks reach this share
# of the live ones, and at least PURGE_MIN of them: dead postings cost reads until then, tombstones memory.
PURGE_SHARE = 16
PURGE_MIN = 1024
# How much of a purge `compact` does per call by default: postings read, each term looked at counting as
# TERM_COST more (its statements and arrays cost about as much as reading that many postings). About
# 50-70 ms of CPU here (bench/keywords.py); the rest waits for the next calls.
COMPACT_BUDGET = 100_000
TERM_COST = 500
# Concepts whose frequencies are kept between reads: a question's concepts are looked up twice, to rank
# chunks and to choose each passage's sentence .
CONCEPT_CACHE = 64
# Terms whose id and document frequency are kept between reads, at most.
TERM_CACHE = 65536
# Postings `KeywordIndex.top` reads in full per question, rarest parts first (the rarest always); the parts
# beyond are looked up for the competing chunks only. Measured with bench/keyword_top.py (docs/PERF.md):
# at 200,000 chunks 97% of the extbench questions stay within 1,000,000 postings (exact); at 1M chunks
# 36% do, and a question costs 0.8x a full read at p50, 0.4x at p95, with recall@10 of BM25's top 0.990.
# A budget of 200,000 halves the p50 at 1M but keeps only 0.930 of the top 10: a question's best chunks
# may hold none of its rarer words.
READ_BUDGET = 1_000_000
# Postings drawn from the looked-up parts' terms (evenly, about) to estimate their share of BM25's mean
# and spread.
MOMENT_SAMPLE = 1024
# The chunks a search's looked-up parts are added to, as many times the top asked for: the best by the
# parts read, which the looked-up parts may reorder; then, up to POOL_MAX times, every chunk that could
# still enter the top (each looked-up chunk costs about as much as reading a few hundred postings).
POOL = 2
POOL_MAX = 8
# Values per `IN (...)` list: well under SQLite's limit on bound parameters.
_IN_BATCH = 500

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS keyword_stats (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    chunks INTEGER NOT NULL,
    length INTEGER NOT NULL,
    empty INTEGER NOT NULL,
    terms INTEGER NOT NULL,
    chinese INTEGER NOT NULL,
    tombstones INTEGER NOT NULL,
    purging INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    stamp INTEGER NOT NULL
);
INSERT OR IGNORE INTO keyword_stats VALUES (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
CREATE TABLE IF NOT EXISTS keyword_terms (
    term_id INTEGER PRIMARY KEY,
    term TEXT NOT NULL UNIQUE,
    chinese INTEGER NOT NULL,
    df INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    fresh INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS keyword_terms_fresh ON keyword_terms(term_id) WHERE fresh >= {FANOUT};
CREATE INDEX IF NOT EXISTS keyword_terms_dead ON keyword_terms(term_id) WHERE entries > df;
CREATE INDEX IF NOT EXISTS keyword_terms_mostly_dead ON keyword_terms(term_id) WHERE entries > 2 * df;
CREATE TABLE IF NOT EXISTS keyword_blocks (
    id INTEGER PRIMARY KEY,
    term_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS keyword_blocks_term ON keyword_blocks(term_id, seq, n);
CREATE TABLE IF NOT EXISTS keyword_chunks (
    chunk_id INTEGER PRIMARY KEY,
    length INTEGER NOT NULL,
    term_ids BLOB NOT NULL,
    frequencies BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS keyword_tombstones (seq INTEGER PRIMARY KEY, chunk_ids BLOB NOT NULL);
"""
"""The keyword tables, for the store to run (`executescript`) when it opens the database; idempotent."""

# A block's arrays, one after the other: chunk ids, term frequencies, chunk lengths. Narrow (8 bytes a
# posting) whenever the values fit, else wide; `n` and the blob's size tell which.
_NARROW = (np.dtype("<i4"), np.dtype("<u2"), np.dtype("<u2"))
_WIDE = (np.dtype("<i8"), np.dtype("<u4"), np.dtype("<u4"))
_NARROW_SIZE = sum(dtype.itemsize for dtype in _NARROW)


class _Postings(NamedTuple):
    """Live postings of one term (or of an intersection): chunk ids, term frequencies, chunk lengths."""

    ids: np.ndarray
    tf: np.ndarray
    lengths: np.ndarray


class _Frequency(NamedTuple):
    """A concept's weighted frequency in every live chunk where it is not zero, with those chunks' lengths."""

    ids: np.ndarray
    frequency: np.ndarray
    lengths: np.ndarray


@dataclass(frozen=True)
class KeywordTop:
    """What `KeywordIndex.top` answers."""

    ids: np.ndarray
    """Chunk ids ascending (int64): the top chunks, and the chunks asked about that the keywords match."""
    scores: np.ndarray
    """Their BM25 scores (float32), all positive."""
    mean: float
    """BM25's mean over every chunk in scope (0 where the keywords do not match)."""
    spread: float
    """Its standard deviation over the same chunks."""
    exact: bool
    """Whether every part of the question was read in full: then the top, the mean and the spread are exact."""

    @classmethod
    def empty(cls) -> KeywordTop:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), 0.0, 0.0, exact=True)

    @classmethod
    def of(
        cls, ids: np.ndarray, scores: np.ndarray, total: float, squares: float, in_scope: int, *, exact: bool
    ) -> KeywordTop:
        """The top chunks and their scores, with the mean and spread given by the sums of BM25 and of its
        square over the `in_scope` chunks."""
        mean = total / in_scope
        return cls(
            ids,
            scores.astype(np.float32),
            mean=mean,
            spread=max(squares / in_scope - mean**2, 0.0) ** 0.5,
            exact=exact,
        )


def best_scored(
    ids: np.ndarray, sums: np.ndarray, limit: int, asked: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Of every chunk in scope that the keywords match (ids ascending, their scores): the `limit` best and
    those `asked` about, ids ascending, with their scores."""
    best = ids if ids.size <= limit else ids[np.argpartition(-sums, limit)[:limit]]
    chosen = np.union1d(best, asked[member(asked, ids)])
    return chosen, sums[np.searchsorted(ids, chosen)]


@dataclass
class _Stats:
    """The `keyword_stats` row."""

    chunks: int = 0
    length: int = 0
    empty: int = 0
    terms: int = 0
    chinese: int = 0
    tombstones: int = 0
    purging: int = 0
    """In a purge, the last write whose tombstones it forgets when done; 0 otherwise."""
    cursor: int = 0
    """In a purge, the last term id it has rid of dead postings."""
    seq: int = 0
    stamp: int = 0

    @classmethod
    def read(cls, db: sqlite3.Connection) -> _Stats:
        row = db.execute(
            f"SELECT {', '.join(item.name for item in fields(cls))} FROM keyword_stats WHERE id = 0"
        ).fetchone()
        if row is None:
            raise RuntimeError(
                "The keyword tables are missing: run keywords.SCHEMA when opening the database."
            )
        return cls(*row)

    def write(self, db: sqlite3.Connection) -> None:
        """Store these totals as a new write: the next sequence number and a new stamp."""
        self.seq += 1
        self.stamp = int.from_bytes(os.urandom(8), "big") >> 1  # a positive SQLite integer
        names = [item.name for item in fields(self)]
        db.execute(
            f"UPDATE keyword_stats SET {', '.join(f'{name} = ?' for name in names)} WHERE id = 0",
            [getattr(self, name) for name in names],
        )

    def purge_due(self) -> bool:
        return self.tombstones > 0 and self.tombstones >= max(PURGE_MIN, self.chunks // PURGE_SHARE)


@dataclass(frozen=True)
class _Tombstones:
    """Removed chunk ids (sorted) and the sequence number of the last write that removed each."""

    ids: np.ndarray
    seqs: np.ndarray
    newest: int
    """The last removal's sequence number: no posting of a block written since is dead."""

    @classmethod
    def read(cls, db: sqlite3.Connection) -> _Tombstones:
        rows = db.execute("SELECT seq, chunk_ids FROM keyword_tombstones").fetchall()
        if not rows:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0)
        parts = [np.frombuffer(row[1], dtype="<i8") for row in rows]
        ids = np.concatenate(parts).astype(np.int64)
        seqs = np.repeat([row[0] for row in rows], [part.size for part in parts]).astype(np.int64)
        # A chunk removed, indexed again and removed again: its last removal is the one that counts.
        order = np.lexsort((seqs, ids))
        ids, seqs = ids[order], seqs[order]
        last = np.r_[ids[1:] != ids[:-1], True]
        return cls(ids[last], seqs[last], int(seqs.max()))

    def keep(self, ids: np.ndarray, seqs: np.ndarray) -> np.ndarray | None:
        """Which postings are live (None: all of them), given their chunk ids and their blocks' sequence
        numbers: a posting is dead when its chunk was removed by a write later than its block's."""
        if self.ids.size == 0 or int(seqs.min(initial=self.newest)) >= self.newest:
            return None
        places = np.minimum(np.searchsorted(self.ids, ids), self.ids.size - 1)
        dead = (self.ids[places] == ids) & (self.seqs[places] > seqs)
        return ~dead if dead.any() else None

    def live(self, blocks: Sequence[tuple[int, np.ndarray]]) -> list[np.ndarray | None]:
        """For each block, given as (seq, chunk ids), which of its postings are live (None: all of them),
        in one pass over the blocks older than the last removal."""
        masks: list[np.ndarray | None] = [None] * len(blocks)
        old = [position for position, (seq, _) in enumerate(blocks) if seq < self.newest]
        if not old:
            return masks
        sizes = [blocks[position][1].size for position in old]
        keep = self.keep(
            np.concatenate([blocks[position][1] for position in old]),
            np.repeat([blocks[position][0] for position in old], sizes),
        )
        if keep is None:
            return masks
        bounds = np.cumsum([0, *sizes])
        for index in np.flatnonzero(np.add.reduceat(~keep, bounds[:-1])).tolist():
            masks[old[index]] = keep[bounds[index] : bounds[index + 1]]
        return masks


@dataclass
class _State:
    """What reads cache, valid while the stored stamp is `stats.stamp`."""

    stats: _Stats
    tombstones: _Tombstones
    # term -> (term_id, df) for terms of live chunks, None for the others.
    terms: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    concepts: OrderedDict[Concept, _Frequency] = field(default_factory=OrderedDict)
    # A search asks for a concept's usable alternatives several times (matching, budgeting, scoring).
    usable: OrderedDict[Concept, list[tuple[tuple[int, ...], float, int]]] = field(
        default_factory=OrderedDict
    )


@dataclass(frozen=True)
class Compaction:
    """What one `KeywordIndex.compact` did."""

    terms: int = 0
    """Terms whose blocks were looked at."""
    postings_read: int = 0
    postings_written: int = 0
    dead_dropped: int = 0
    """Postings of removed chunks dropped."""
    purged: bool = False
    """Whether a purge ended: the chunks removed before it started are forgotten."""


class KeywordIndex:
    """BM25 over the chunks' terms (Lucene variant, k1 1.5, b 0.75), stored in the index's database."""

    def __init__(self, connection: sqlite3.Connection, read_budget: int = READ_BUDGET) -> None:
        """Reads use `connection` (autocommit mode, the store's lock held: this class is not thread-safe
        on its own). The tables must exist: the store runs `SCHEMA` when it opens the database.
        `read_budget`: postings `top` reads in full per question."""
        self._db = connection
        self.read_budget = read_budget
        self._state: _State | None = None

    # -- writing: inside the caller's transaction ---------------------------------------------------

    def add(self, db: sqlite3.Connection, chunk_id: int, terms: Sequence[str]) -> None:
        """Index one chunk's terms (see `add_many`, which writes fewer blocks for several chunks)."""
        self.add_many(db, [(chunk_id, terms)])

    def add_many(self, db: sqlite3.Connection, chunks: Iterable[tuple[int, Sequence[str]]]) -> None:
        """Index some chunks' terms (as `index.text.terms` gives them; repeats count as term frequency).

        Writes one block per distinct term of these chunks, one row per chunk and one update per term:
        a transaction's chunks are best added in one call, though in calls of some thousands of chunks at
        most (a reindex: many calls in its one transaction), as the call's postings are gathered in memory.
        Must run inside the caller's transaction, which a failure here should roll back. ValueError if a
        chunk id is already indexed or given twice."""
        _require_transaction(db)
        items = [(int(chunk_id), list(words)) for chunk_id, words in chunks]
        if not items:
            return
        chunk_ids = [chunk_id for chunk_id, _ in items]
        if len(set(chunk_ids)) != len(chunk_ids):
            raise ValueError("A chunk id is given twice.")
        taken = _rows_in(db, "SELECT chunk_id FROM keyword_chunks WHERE chunk_id IN ({})", chunk_ids)
        if taken:
            raise ValueError(f"Chunks already indexed: {sorted(row[0] for row in taken)[:10]}.")
        self._state = None
        stats = _Stats.read(db)
        seq = stats.seq + 1

        # The postings of the batch, grouped by term (in order of first appearance), sorted by chunk id.
        term_index: dict[str, int] = {}
        chunk_terms: list[list[int]] = []
        chunk_counts: list[list[int]] = []
        postings_term, postings_chunk, postings_tf, postings_length = [], [], [], []
        for chunk_id, words in items:
            counts = Counter(words)
            indexes = [term_index.setdefault(term, len(term_index)) for term in counts]
            chunk_terms.append(indexes)
            chunk_counts.append(list(counts.values()))
            postings_term.extend(indexes)
            postings_chunk.extend([chunk_id] * len(indexes))
            postings_tf.extend(counts.values())
            postings_length.extend([len(words)] * len(indexes))
            stats.chunks += 1
            stats.length += len(words)
            stats.empty += not words
        vocabulary = list(term_index)
        order = np.lexsort((postings_chunk, postings_term))
        by_term = np.asarray(postings_term, dtype=np.int64)[order]
        starts = np.r_[0, np.flatnonzero(np.diff(by_term)) + 1, by_term.size]
        ids = np.asarray(postings_chunk, dtype=np.int64)[order]
        tfs = np.asarray(postings_tf, dtype=np.int64)[order]
        lengths = np.asarray(postings_length, dtype=np.int64)[order]

        known = {
            row["term"]: (row["term_id"], row["df"])
            for row in _rows_in(
                db, "SELECT term_id, term, df FROM keyword_terms WHERE term IN ({})", vocabulary
            )
        }
        sizes = np.diff(starts)
        blobs = _pack_groups(ids, tfs, lengths, starts)
        new_terms = [term for term in vocabulary if term not in known]
        chinese = {term: has_chinese(term) for term in new_terms}
        db.executemany(
            "INSERT INTO keyword_terms (term, chinese, df, entries, fresh) VALUES (?, ?, ?, ?, 1)",
            [
                (term, chinese[term], int(sizes[term_index[term]]), int(sizes[term_index[term]]))
                for term in new_terms
            ],
        )
        for row in _rows_in(db, "SELECT term_id, term FROM keyword_terms WHERE term IN ({})", new_terms):
            known[row["term"]] = (row["term_id"], 0)
        new_terms_set = set(new_terms)
        term_ids = np.zeros(len(vocabulary), dtype=np.int64)
        updates, blocks = [], []
        for index, term in enumerate(vocabulary):
            term_id, df = known[term]
            if term not in new_terms_set:
                updates.append((int(sizes[index]), int(sizes[index]), term_id))
            if df == 0:  # a word new to the live chunks
                stats.terms += 1
                stats.chinese += chinese[term] if term in chinese else has_chinese(term)
            term_ids[index] = term_id
            blocks.append((term_id, seq, int(sizes[index]), blobs[index]))
        db.executemany(
            "UPDATE keyword_terms SET df = df + ?, entries = entries + ?, fresh = fresh + 1 WHERE term_id = ?",
            updates,
        )
        db.executemany("INSERT INTO keyword_blocks (term_id, seq, n, data) VALUES (?, ?, ?, ?)", blocks)
        db.executemany(
            "INSERT INTO keyword_chunks (chunk_id, length, term_ids, frequencies) VALUES (?, ?, ?, ?)",
            [
                (chunk_id, len(words), _term_ids_blob(term_ids[indexes]), _frequencies_blob(counts))
                for (chunk_id, words), indexes, counts in zip(items, chunk_terms, chunk_counts, strict=True)
            ],
        )
        stats.write(db)

    def remove(self, db: sqlite3.Connection, chunk_ids: Iterable[int]) -> None:
        """Take chunks out of the index (ids not indexed are ignored).

        Corrects the frequencies and totals of these chunks' terms and leaves their postings in place, dead
        (skipped by searches) until `compact` drops them: the cost is that of the chunks, not of the
        posting lists they are in. Must run inside the caller's transaction."""
        _require_transaction(db)
        wanted = sorted({int(chunk_id) for chunk_id in chunk_ids})
        rows = _rows_in(
            db, "SELECT chunk_id, length, term_ids FROM keyword_chunks WHERE chunk_id IN ({})", wanted
        )
        if not rows:
            return
        self._state = None
        stats = _Stats.read(db)
        removed = [row["chunk_id"] for row in rows]
        lost = Counter(
            int(term_id) for row in rows for term_id in np.frombuffer(row["term_ids"], dtype="<i4")
        )
        for row in _rows_in(
            db, "SELECT term_id, df, chinese FROM keyword_terms WHERE term_id IN ({})", list(lost)
        ):
            if row["df"] == lost[row["term_id"]]:  # no live chunk holds it any more
                stats.terms -= 1
                stats.chinese -= row["chinese"]
        db.executemany(
            "UPDATE keyword_terms SET df = df - ? WHERE term_id = ?",
            [(count, term) for term, count in lost.items()],
        )
        _rows_in(db, "DELETE FROM keyword_chunks WHERE chunk_id IN ({})", removed)
        db.execute(
            "INSERT INTO keyword_tombstones (seq, chunk_ids) VALUES (?, ?)",
            (stats.seq + 1, np.asarray(removed, dtype="<i8").tobytes()),
        )
        stats.chunks -= len(rows)
        stats.length -= sum(row["length"] for row in rows)
        stats.empty -= sum(row["length"] == 0 for row in rows)
        stats.tombstones += len(rows)
        stats.write(db)

    def clear(self, db: sqlite3.Connection) -> None:
        """Empty the index (for a reindex, before adding every chunk again). Inside the caller's transaction."""
        _require_transaction(db)
        self._state = None
        for table in ("keyword_blocks", "keyword_chunks", "keyword_terms", "keyword_tombstones"):
            db.execute(f"DELETE FROM {table}")
        # The sequence goes on: it orders blocks and tombstones, and caches compare stamps, not totals.
        _Stats(seq=_Stats.read(db).seq).write(db)

    def add_frequencies(self, db: sqlite3.Connection) -> None:
        """Give each chunk's row its terms' frequencies, read from the posting lists, where an index of
        format 3 lacks them (its rows' term ids are then in ascending order). Once, when the store upgrades
        the index, inside its transaction: it holds every live posting in memory, about 24 bytes each."""
        _require_transaction(db)
        if "frequencies" in {row[1] for row in db.execute("PRAGMA table_info(keyword_chunks)")}:
            return
        db.execute("ALTER TABLE keyword_chunks ADD COLUMN frequencies BLOB NOT NULL DEFAULT x''")
        tombstones = _Tombstones.read(db)
        chunk_parts, term_parts, count_parts = [], [], []
        for term_id, seq, n, data in db.execute("SELECT term_id, seq, n, data FROM keyword_blocks"):
            postings = _unpack(data, n)
            keep = tombstones.keep(postings.ids, np.full(n, seq, dtype=np.int64))
            if keep is not None:
                postings = _Postings(*(array[keep] for array in postings))
            chunk_parts.append(postings.ids)
            term_parts.append(np.full(postings.ids.size, term_id, dtype=np.int64))
            count_parts.append(postings.tf)
        if not chunk_parts:
            return
        chunks, terms, counts = (np.concatenate(parts) for parts in (chunk_parts, term_parts, count_parts))
        del chunk_parts, term_parts, count_parts
        order = np.lexsort((terms, chunks))
        chunks, terms, counts = chunks[order], terms[order], counts[order]
        bounds = np.r_[0, np.flatnonzero(np.diff(chunks)) + 1, chunks.size].tolist()
        db.executemany(
            "UPDATE keyword_chunks SET term_ids = ?, frequencies = ? WHERE chunk_id = ?",
            (
                (
                    _term_ids_blob(terms[start:end]),
                    _frequencies_blob(counts[start:end].tolist()),
                    int(chunks[start]),
                )
                for start, end in itertools.pairwise(bounds)
            ),
        )

    def compaction_due(self) -> bool:
        """Whether `compact` has work: terms given `FANOUT` blocks since it last looked at them, terms with
        more dead postings than live ones, a purge under way, or enough removed chunks to start one."""
        with self._reading() as state:
            return (
                state.stats.purging > 0
                or state.stats.purge_due()
                or self._db.execute(f"SELECT 1 FROM keyword_terms WHERE fresh >= {FANOUT} LIMIT 1").fetchone()
                is not None
                or self._db.execute("SELECT 1 FROM keyword_terms WHERE entries > 2 * df LIMIT 1").fetchone()
                is not None
            )

    def compact(
        self, db: sqlite3.Connection, *, budget: int | None = COMPACT_BUDGET, purge: bool = False
    ) -> Compaction:
        """Merge blocks and drop dead postings, inside the caller's transaction. The store calls it after
        each write: it writes nothing when nothing is due (`compaction_due`).

        - A term with more dead postings than live ones is rewritten whole: paid for by its removals.
        - A term given `FANOUT` blocks since it was last looked at has its blocks merged by size: `FANOUT`
          blocks of a tier (1-7, 8-63, 64-511, … postings) into one of a higher tier, as long as a tier
          holds that many, up to `LAST_TIER`. A posting is rewritten once per tier it climbs.
        - Once removed chunks reach 1/`PURGE_SHARE` of the live ones (or with `purge`), a purge starts: the
          terms holding dead postings are rewritten without them, in order of term id, for about `budget`
          per call (postings read, see `TERM_COST`; None: to the end; at least one term a call), then the
          tombstones of the chunks removed before it started are forgotten. Paid for by those removals.

        Scores are the same before and after; what changes is how many blocks and bytes a search reads."""
        _require_transaction(db)
        stats = _Stats.read(db)
        if not stats.purging and stats.tombstones and (purge or stats.purge_due()):
            stats.purging, stats.cursor = stats.seq, 0  # the tombstones written so far are to be purged
        mostly_dead = {
            row[0]: True for row in db.execute("SELECT term_id FROM keyword_terms WHERE entries > 2 * df")
        }
        tiered = {
            row[0]: bool(row[1])
            for row in db.execute(f"SELECT term_id, entries > df FROM keyword_terms WHERE fresh >= {FANOUT}")
        }
        if not mostly_dead and not tiered and not stats.purging:
            return Compaction()
        self._state = None
        rewrite = _Rewrite(_Tombstones.read(db))
        # Merges first, whole: they cost about what the writes since the last call wrote (amortised), so
        # leaving some for later could only pile them up. In a purge, a term looked at for a merge loses its
        # dead postings as well. The budget is the purge's.
        plans = [
            _Plan(term_id, whole=term_id in mostly_dead, purge=stats.purging > 0 and dead)
            for term_id, dead in (tiered | mostly_dead).items()
        ]
        rewrite.compact(db, plans, _block_sizes(db, [plan.term_id for plan in plans]))
        done = {plan.term_id for plan in plans}
        limit = None if budget is None else rewrite.work + budget
        while stats.purging and (limit is None or rewrite.work < limit):
            following = [
                row[0]
                for row in db.execute(
                    "SELECT term_id FROM keyword_terms WHERE entries > df AND term_id > ? ORDER BY term_id LIMIT ?",
                    (stats.cursor, _IN_BATCH),
                )
            ]
            if not following:
                # Every term has been rid of the postings these tombstones kill: they are needed no more.
                removed = db.execute(
                    "SELECT COALESCE(SUM(LENGTH(chunk_ids)), 0) / 8 FROM keyword_tombstones WHERE seq <= ?",
                    (stats.purging,),
                ).fetchone()[0]
                db.execute("DELETE FROM keyword_tombstones WHERE seq <= ?", (stats.purging,))
                stats.tombstones -= removed
                stats.purging, stats.cursor = 0, 0
                rewrite.purged = True
                break
            sizes = _block_sizes(db, [term_id for term_id in following if term_id not in done])
            plans, work = [], rewrite.work
            for term_id in following:
                if term_id not in done:
                    work += TERM_COST + sum(n for _, n in sizes[term_id].values())
                    if limit is not None and plans and work > limit:
                        break
                    plans.append(_Plan(term_id, whole=False, purge=True))
                stats.cursor = term_id
            rewrite.compact(db, plans, sizes)
        rewrite.apply(db)
        stats.write(db)
        return Compaction(
            terms=rewrite.terms_done,
            postings_read=rewrite.postings_read,
            postings_written=rewrite.postings_written,
            dead_dropped=rewrite.dead_dropped,
            purged=rewrite.purged,
        )

    # -- reading ------------------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Drop every cache (the next read reloads the totals and tombstones). Reads check the stored stamp
        anyway; this is for a store that has seen another generation and wants no doubt."""
        self._state = None

    def chunk_count(self) -> int:
        """Live chunks indexed."""
        with self._reading() as state:
            return state.stats.chunks

    def vocabulary_is_chinese(self) -> bool:
        """Whether at least half of the distinct terms of the live chunks hold a Chinese character."""
        with self._reading() as state:
            return state.stats.chinese / max(state.stats.terms, 1) >= 0.5

    def search(self, keywords: Keywords, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every live chunk with a positive BM25 score for the keywords (only those in `allowed` when given):
        chunk ids ascending (int64) and their scores (float32), as bm25s would give them for plain terms.

        Reads the posting lists of the question's terms and of its concepts' alternatives in full, whatever
        `allowed` holds (document frequencies are those of all live chunks): what `top` bounds."""
        with self._reading() as state:
            ids, scores = self._scores(state, self._parts(state, keywords))
        keep = scores > 0
        if allowed is not None:
            keep &= member(ids, np.asarray(allowed, dtype=np.int64))
        return ids[keep], scores[keep]

    def top(
        self,
        keywords: Keywords,
        limit: int,
        allowed: np.ndarray | None = None,
        also: np.ndarray | None = None,
    ) -> KeywordTop:
        """The `limit` chunks (among `allowed`) that BM25 scores highest, the scores of the chunks in `also`,
        and BM25's mean and spread over every chunk in scope, reading a bounded number of postings.

        The question's parts (its terms, its concepts) are read in full, rarest first, while their postings
        add up to at most `read_budget` (the rarest always). If that is all of them, everything is exact:
        the top is `search`'s and the mean and spread are over its scores. Otherwise the other parts, the
        common ones, are looked up only for the chunks that compete (`also`, and a pool of the best by the
        parts read, widened to those the common parts could still lift into the top: `_top_looking_up`),
        where the scores are exact (a concept's idf aside: see `Part.df`). They bring no chunks of their
        own into the top, and their share of the mean and spread is estimated from samples of the chunks
        (`_looked_up_moments`)."""
        with self._reading() as state:
            stats = state.stats
            scope = None if allowed is None else np.unique(np.asarray(allowed, dtype=np.int64))
            in_scope = stats.chunks if scope is None else int(scope.size)
            parts = self._parts(state, keywords)
            if not parts or not in_scope:
                return KeywordTop.empty()
            by_cost = sorted(range(len(parts)), key=lambda position: parts[position].postings)
            spent, read = 0, set()
            for position in by_cost:
                if read and spent + parts[position].postings > self.read_budget:
                    break
                read.add(position)
                spent += parts[position].postings
            # In the question's order, so that the sums are `search`'s to the last bit.
            ids, sums = self._scores(state, [part for position, part in enumerate(parts) if position in read])
            keep = sums > 0
            if scope is not None:
                keep &= member(ids, scope)
            ids, sums = ids[keep], sums[keep]
            asked = (
                np.zeros(0, dtype=np.int64) if also is None else np.unique(np.asarray(also, dtype=np.int64))
            )
            if scope is not None:
                asked = asked[member(asked, scope)]
            looked_up = [part for position, part in enumerate(parts) if position not in read]
            squares = sums.astype(np.float64) ** 2
            total, total_squares = float(sums.sum(dtype=np.float64)), float(squares.sum())
            if not looked_up:
                chosen, scores = best_scored(ids, sums, limit, asked)
            else:
                added, added_squares = self._looked_up_moments(state, looked_up, (ids, sums), scope)
                total += added
                total_squares += added_squares
                chosen, scores = self._top_looking_up(state, looked_up, ids, sums, limit, asked)
            return KeywordTop.of(chosen, scores, total, total_squares, in_scope, exact=not looked_up)

    def match_scores(self, texts: Sequence[str], keywords: Keywords) -> np.ndarray:
        """How much of the keywords each text holds, with the index's idf (index.lexical.match_scores):
        for texts too short for BM25's statistics, such as the sentences of a passage."""
        with self._reading() as state:
            wanted = set(keywords.terms) | {
                term for concept in keywords.concepts for alt in concept.alternatives for term in alt.terms
            }
            rows = self._term_rows(state, wanted)
            return match_scores(
                texts,
                keywords,
                state.stats.chunks,
                lambda term: (rows.get(term) or (0, 0))[1],
                lambda concept: self._concept_frequency(state, concept).ids.size,
            )

    @contextlib.contextmanager
    def _reading(self) -> Iterator[_State]:
        """The cached state, checked against the stored stamp; in a read transaction of its own unless the
        caller holds one (a store's snapshot), so that every row read comes from one commit."""
        db = self._db
        own = not db.in_transaction
        if own:
            db.execute("BEGIN")
        try:
            stats = _Stats.read(db)
            if self._state is None or self._state.stats.stamp != stats.stamp:
                self._state = _State(stats, _Tombstones.read(db))
            yield self._state
        finally:
            if own:
                db.execute("COMMIT")

    def _top_looking_up(
        self,
        state: _State,
        looked_up: Sequence[Part],
        ids: np.ndarray,
        sums: np.ndarray,
        limit: int,
        asked: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best `limit` chunks by their whole score among those the parts read match, and the chunks
        `asked`, with their whole scores: the parts looked up are added for a pool of chunks only.

        The pool is the best `POOL` times `limit` by the parts read (`ids`, `sums`), widened once to every
        chunk that could still overtake its `limit`-th best (the looked-up parts add at most their idf
        each: MaxScore's bound), up to `POOL_MAX` times `limit`."""
        bound = sum(part.times * idf(state.stats.chunks, part.df) for part in looked_up)
        most = min(ids.size, POOL_MAX * limit)
        best = np.argpartition(-sums, most - 1)[:most] if 0 < most < ids.size else np.arange(ids.size)
        order = best[np.argsort(-sums[best], kind="stable")]
        pool = ids[order[: POOL * limit]]
        chosen = np.union1d(pool, asked)
        scores = self._whole_scores(state, looked_up, ids, sums, chosen)
        in_pool = np.isin(chosen, pool)
        if pool.size >= limit and pool.size < ids.size:
            threshold = np.partition(scores[in_pool], pool.size - limit)[pool.size - limit]
            wider = min(int(np.count_nonzero(sums > threshold - bound)), POOL_MAX * limit)
            if wider > pool.size:
                pool = ids[order[:wider]]
                extra = np.setdiff1d(pool, chosen)
                chosen = np.concatenate([chosen, extra])
                scores = np.concatenate([scores, self._whole_scores(state, looked_up, ids, sums, extra)])
                in_pool = np.isin(chosen, pool)
        candidates = np.flatnonzero(in_pool)
        keep = np.isin(chosen, asked)
        keep[candidates[np.argsort(-scores[candidates], kind="stable")[:limit]]] = True
        keep &= scores > 0
        order = np.argsort(chosen[keep])
        return chosen[keep][order], scores[keep][order]

    def _whole_scores(
        self, state: _State, looked_up: Sequence[Part], ids: np.ndarray, sums: np.ndarray, chosen: np.ndarray
    ) -> np.ndarray:
        """The whole scores of some chunks (ids ascending): the parts read (`ids`, `sums`) and those looked up."""
        if ids.size:
            found = np.minimum(np.searchsorted(ids, chosen), ids.size - 1)
            read = np.where(ids[found] == chosen, sums[found], 0.0)
        else:
            read = np.zeros(chosen.size)
        return read + self._look_up(state, looked_up, chosen)

    def _parts(self, state: _State, keywords: Keywords) -> list[Part]:
        """The summands of the keywords' BM25 that the live chunks can match: terms, then concepts."""
        parts: list[Part] = []
        if not state.stats.chunks:
            return parts
        # bm25s: a term repeated in the question counts as often; one the index lacks counts nothing. The
        # empty term is never looked for: index.text.terms yields none (bm25s would score the empty chunks
        # with it, or fail when there are none).
        times = Counter(term for term in keywords.terms if term)
        rows = self._term_rows(state, times)
        for term, count in times.items():
            row = rows.get(term)
            if row is not None:
                parts.append(Part((row[0],), row[1], df=row[1], times=count))
        for concept in keywords.concepts:
            usable = self._usable_alternatives(state, concept)
            if usable:
                term_ids = tuple(sorted({term_id for term_ids, _, _ in usable for term_id in term_ids}))
                parts.append(
                    Part(
                        term_ids,
                        sum(df for term_ids_, _, df in usable for _ in term_ids_),
                        df=_union_estimate(state.stats.chunks, [df for _, _, df in usable]),
                        concept=concept,
                        alternatives=tuple((term_ids, weight) for term_ids, weight, _ in usable),
                    )
                )
        return parts

    def _scores(self, state: _State, parts: Sequence[Part]) -> tuple[np.ndarray, np.ndarray]:
        """The parts read in full: every chunk any of them matches, ids ascending, and the sum of their
        scores (float32)."""
        stats = state.stats
        id_parts: list[np.ndarray] = []
        score_parts: list[np.ndarray] = []
        terms = [part for part in parts if part.concept is None]
        postings = self._postings(state, [part.term_ids[0] for part in terms])
        for part in parts:
            if part.concept is None:
                found = postings[part.term_ids[0]]
                id_parts.append(found.ids)
                score_parts.append(term_scores(stats, part, found.tf, found.lengths))
            else:
                frequency = self._concept_frequency(state, part.concept)
                if frequency.ids.size:
                    id_parts.append(frequency.ids)
                    score_parts.append(
                        concept_scores(stats, frequency.ids.size, frequency.frequency, frequency.lengths)
                    )
        ids, sums, _ = _group(id_parts, score_parts)
        return ids, sums.astype(np.float32)

    def _frequencies(self, chunk_ids: np.ndarray, term_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Some terms' frequencies in some chunks (ids ascending), from the chunks' rows (`keyword_chunks`):
        a matrix, chunk by term (0 where absent, and for a chunk not live), and the chunks' lengths."""
        frequencies = np.zeros((chunk_ids.size, len(term_ids)), dtype=np.float64)
        lengths = np.zeros(chunk_ids.size, dtype=np.float64)
        if not chunk_ids.size or not term_ids:
            return frequencies, lengths
        rows = _tuples_in(
            self._db,
            "SELECT chunk_id, length, term_ids, frequencies FROM keyword_chunks WHERE chunk_id IN ({})",
            chunk_ids.tolist(),
        )
        if not rows:
            return frequencies, lengths
        found_ids, found_lengths, term_blobs, frequency_blobs = zip(*rows, strict=True)
        places = np.searchsorted(chunk_ids, found_ids)
        lengths[places] = found_lengths
        sizes = np.array([len(blob) // 4 for blob in term_blobs])
        terms = np.frombuffer(b"".join(term_blobs), dtype="<i4")
        counts = _unpack_frequencies(frequency_blobs, sizes)
        owners = np.repeat(places, sizes)
        wanted = np.asarray(term_ids, dtype=np.int64)
        order = np.argsort(wanted)
        found = np.minimum(np.searchsorted(wanted, terms, sorter=order), wanted.size - 1)
        hit = wanted[order[found]] == terms
        frequencies[owners[hit], order[found[hit]]] = counts[hit]
        return frequencies, lengths

    def _look_up(self, state: _State, parts: Sequence[Part], chunk_ids: np.ndarray) -> np.ndarray:
        """The parts' summed exact scores in each of some chunks (ids ascending), from the chunks' rows. A
        concept's document frequency, unknown without reading it in full, is the part's estimate."""
        term_ids = sorted({term_id for part in parts for term_id in part.term_ids})
        frequencies, lengths = self._frequencies(chunk_ids, term_ids)
        column = {term_id: position for position, term_id in enumerate(term_ids)}
        return part_scores(state.stats, parts, frequencies, column, lengths)

    def _looked_up_moments(
        self,
        state: _State,
        parts: Sequence[Part],
        read: tuple[np.ndarray, np.ndarray],
        scope: np.ndarray | None,
    ) -> tuple[float, float]:
        """Estimates of what the parts looked up (L) add to the sums of BM25 and of its square over the chunks
        in scope: the sums of L and of 2·R·L + L², R being the parts read (`read`: the chunks in scope they
        match, ascending, and their scores).

        Two strata: the chunks the parts read match, where R is known (all of them, or a random
        `MOMENT_SAMPLE`), and the others, where only L² counts (a uniform random sample of the scope,
        `MOMENT_SAMPLE` chunks, those of the first stratum set aside). Common words are common in both, so
        a few thousand chunks estimate them well; the covariances of the parts are kept."""
        rng = np.random.default_rng(0)  # the same draw for the same question and index: reproducible
        ids, sums = read
        matched = ids if ids.size <= MOMENT_SAMPLE else np.sort(rng.choice(ids, MOMENT_SAMPLE, replace=False))
        looked_up = self._look_up(state, parts, matched)
        base = sums[np.searchsorted(ids, matched)].astype(np.float64)
        share = ids.size / max(matched.size, 1)
        total = share * float(looked_up.sum())
        squares = share * float((2 * base * looked_up + looked_up**2).sum())
        sample, in_scope = self._uniform_sample(state, scope, rng)
        outside = sample[~member(sample, ids)]
        if outside.size:
            looked_up = self._look_up(state, parts, outside)
            share = in_scope / sample.size
            total += share * float(looked_up.sum())
            squares += share * float((looked_up**2).sum())
        return total, squares

    def _uniform_sample(
        self, state: _State, scope: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, int]:
        """About `MOMENT_SAMPLE` live chunks drawn uniformly from the scope (ascending), and the scope's size.
        Without a scope, ids are drawn from the range of the live ones and kept where a chunk lives."""
        if scope is not None:
            if scope.size <= MOMENT_SAMPLE:
                return scope, int(scope.size)
            return np.sort(rng.choice(scope, MOMENT_SAMPLE, replace=False)), int(scope.size)
        # Two subqueries: SQLite reads MIN or MAX off the index only when a query asks for one of them.
        low, high = self._db.execute(
            "SELECT (SELECT MIN(chunk_id) FROM keyword_chunks), (SELECT MAX(chunk_id) FROM keyword_chunks)"
        ).fetchone()
        live = state.stats.chunks
        if low is None or not live:
            return np.zeros(0, dtype=np.int64), 0
        span = high - low + 1
        if span <= MOMENT_SAMPLE:
            drawn = np.arange(low, high + 1, dtype=np.int64)
        else:
            wanted = min(span, -(-MOMENT_SAMPLE * span // live))
            drawn = np.unique(rng.integers(low, high + 1, size=wanted, dtype=np.int64))
        present = [
            row[0]
            for row in _tuples_in(
                self._db, "SELECT chunk_id FROM keyword_chunks WHERE chunk_id IN ({})", drawn.tolist()
            )
        ]
        return np.sort(np.asarray(present, dtype=np.int64)), live

    def _usable_alternatives(
        self, state: _State, concept: Concept
    ) -> list[tuple[tuple[int, ...], float, int]]:
        """A concept's alternatives whose terms the live chunks all hold: their term ids, their weight and
        their rarest term's document frequency."""
        cached = state.usable.get(concept)
        if cached is not None:
            state.usable.move_to_end(concept)
            return cached
        rows = self._term_rows(state, {term for alt in concept.alternatives for term in alt.terms})
        usable = []
        for alt in concept.alternatives:
            found = [rows.get(term) for term in alt.terms]
            if alt.terms and all(row is not None for row in found):
                usable.append(
                    (tuple(row[0] for row in found), alt.weight, min(row[1] for row in found))  # type: ignore[index]
                )
        state.usable[concept] = usable
        if len(state.usable) > CONCEPT_CACHE:
            state.usable.popitem(last=False)
        return usable

    def _concept_frequency(self, state: _State, concept: Concept) -> _Frequency:
        """A concept's frequency in each live chunk: the weighted sum of its alternatives' frequencies, an
        alternative of several terms counting as often as its rarest term."""
        cached = state.concepts.get(concept)
        if cached is not None:
            state.concepts.move_to_end(concept)
            return cached
        usable = self._usable_alternatives(state, concept)
        postings = self._postings(
            state, sorted({term_id for term_ids, _, _ in usable for term_id in term_ids})
        )
        id_parts, value_parts, length_parts = [], [], []
        for term_ids, weight, _ in usable:
            found = _intersect([postings[term_id] for term_id in term_ids])
            id_parts.append(found.ids)
            value_parts.append(weight * found.tf.astype(np.float64))
            length_parts.append(found.lengths)
        ids, frequency, lengths = _group(id_parts, value_parts, length_parts)
        frequency = frequency.astype(np.float32)
        nonzero = frequency != 0
        result = _Frequency(ids[nonzero], frequency[nonzero], lengths[nonzero])
        state.concepts[concept] = result
        if len(state.concepts) > CONCEPT_CACHE:
            state.concepts.popitem(last=False)
        return result

    def _term_rows(self, state: _State, terms: Collection[str]) -> dict[str, tuple[int, int] | None]:
        """(term id, document frequency) of each term of the live chunks; None for the others."""
        missing = [term for term in terms if term not in state.terms]
        if missing and len(state.terms) + len(missing) > TERM_CACHE:
            state.terms.clear()  # the cache is full: start afresh with these terms only
            missing = list(terms)
        if missing:
            state.terms.update(dict.fromkeys(missing))
            for row in _rows_in(
                self._db, "SELECT term_id, term, df FROM keyword_terms WHERE df > 0 AND term IN ({})", missing
            ):
                state.terms[row["term"]] = (row["term_id"], row["df"])
        return {term: state.terms[term] for term in terms}

    def _postings(self, state: _State, term_ids: Sequence[int]) -> dict[int, _Postings]:
        """The live postings of some terms, from all their blocks: each term's blocks joined end to end
        (`_unpack_many`), then its dead postings dropped in one pass."""
        blocks: defaultdict[int, list[tuple[int, int, bytes]]] = defaultdict(list)
        for term_id, seq, n, data in _tuples_in(
            self._db, "SELECT term_id, seq, n, data FROM keyword_blocks WHERE term_id IN ({})", list(term_ids)
        ):
            blocks[term_id].append((seq, n, data))
        empty = np.zeros(0, dtype=np.int64)
        found = {}
        for term_id in term_ids:
            if not blocks[term_id]:
                found[term_id] = _Postings(empty, empty, empty)
                continue
            seqs, sizes, data = zip(*blocks[term_id], strict=True)
            postings = _unpack_many(data, sizes)
            keep = None
            if min(seqs) < state.tombstones.newest:  # else no posting of the term can be dead
                keep = state.tombstones.keep(postings.ids, np.repeat(seqs, sizes))
            found[term_id] = postings if keep is None else _Postings(*(array[keep] for array in postings))
        return found


def _union_estimate(chunks: int, matching: Sequence[int]) -> int:
    """How many of `chunks` match at least one of some alternatives that match `matching` chunks each, were
    they independent: the synonyms of a concept, common words especially, overlap too much for a sum."""
    missed = float(np.prod([1 - min(count, chunks) / chunks for count in matching]))
    return max(max(matching, default=0), round(chunks * (1 - missed)))


def _require_transaction(db: sqlite3.Connection) -> None:
    if not db.in_transaction:
        # In autocommit mode each statement would commit alone: a crash could leave the keyword tables
        # disagreeing with the chunks.
        raise RuntimeError("Keyword index writes must run inside the caller's transaction (BEGIN IMMEDIATE).")


def _rows_in(db: sqlite3.Connection, sql: str, values: Sequence[object]) -> list[sqlite3.Row]:
    """`sql`, whose `{}` is an IN list, run over slices of `values`; the rows of all of them."""
    rows: list[sqlite3.Row] = []
    for start in range(0, len(values), _IN_BATCH):
        part = list(values[start : start + _IN_BATCH])
        rows.extend(db.execute(sql.format(",".join("?" * len(part))), part).fetchall())
    return rows


def _tuples_in(db: sqlite3.Connection, sql: str, values: Sequence[object]) -> list[tuple]:
    """As `_rows_in`, as plain tuples: quicker by far than rows by name for thousands of rows."""
    cursor = db.cursor()
    cursor.row_factory = None
    rows: list[tuple] = []
    for start in range(0, len(values), _IN_BATCH):
        part = list(values[start : start + _IN_BATCH])
        rows.extend(cursor.execute(sql.format(",".join("?" * len(part))), part).fetchall())
    return rows


def _term_ids_blob(term_ids: np.ndarray) -> bytes:
    # 4 bytes a term: SQLite gives ids in order, so 2³¹ of them would take as many distinct terms.
    if term_ids.size and int(term_ids.max()) >= 2**31:
        raise OverflowError("Keyword term ids beyond 2³¹: clear and rebuild the keyword index.")
    return term_ids.astype("<i4").tobytes()


def _frequencies_blob(counts: Sequence[int]) -> bytes:
    # 2 bytes a term, 4 for a chunk repeating a word 65,536 times or more: the blob's size tells which.
    return np.asarray(counts, dtype="<u2" if max(counts, default=0) < 2**16 else "<u4").tobytes()


def _unpack_frequencies(blobs: Sequence[bytes], sizes: np.ndarray) -> np.ndarray:
    """Some chunks' frequencies, end to end; joined as bytes when all are narrow (nearly always)."""
    if sum(len(blob) for blob in blobs) == 2 * int(sizes.sum()):
        return np.frombuffer(b"".join(blobs), dtype="<u2")
    return np.concatenate(
        [
            np.frombuffer(blob, dtype="<u2" if len(blob) == 2 * n else "<u4")
            for blob, n in zip(blobs, sizes, strict=True)
        ]
    )


def _layout(ids: np.ndarray, tf: np.ndarray, lengths: np.ndarray) -> tuple[np.dtype, np.dtype, np.dtype]:
    narrow = ids.size == 0 or (
        int(ids.min()) >= 0
        and int(ids.max()) < 2**31
        and int(tf.max()) < 2**16
        and int(lengths.max()) < 2**16
    )
    return _NARROW if narrow else _WIDE


def _pack(ids: np.ndarray, tf: np.ndarray, lengths: np.ndarray) -> bytes:
    return _pack_groups(ids, tf, lengths, np.array([0, ids.size]))[0]


def _pack_groups(ids: np.ndarray, tf: np.ndarray, lengths: np.ndarray, starts: np.ndarray) -> list[bytes]:
    """One block per slice `starts[i]:starts[i + 1]` of the arrays, all in the layout that fits them all."""
    layout = _layout(ids, tf, lengths)
    # Sliced as bytes: thousands of small blocks a batch, where numpy's per-call cost would dominate.
    arrays = [
        np.ascontiguousarray(array, dtype=dtype).tobytes()
        for array, dtype in zip((ids, tf, lengths), layout, strict=True)
    ]
    widths = [dtype.itemsize for dtype in layout]
    bounds = starts.tolist()
    return [
        b"".join(array[start * width : end * width] for array, width in zip(arrays, widths, strict=True))
        for start, end in itertools.pairwise(bounds)
    ]


def _chunk_ids(data: bytes, n: int) -> np.ndarray:
    """A block's chunk ids alone, a view of the blob."""
    return np.frombuffer(data, dtype=_NARROW[0] if len(data) == n * _NARROW_SIZE else _WIDE[0], count=n)


def _unpack(data: bytes, n: int) -> _Postings:
    """A block's arrays, as read-only views of the blob (narrow or wide: concatenating upcasts)."""
    layout = _NARROW if len(data) == n * _NARROW_SIZE else _WIDE
    arrays, offset = [], 0
    for dtype in layout:
        arrays.append(np.frombuffer(data, dtype=dtype, count=n, offset=offset))
        offset += n * dtype.itemsize
    return _Postings(*arrays)


def _unpack_many(blobs: Sequence[bytes], sizes: Sequence[int]) -> _Postings:
    """Several blocks' arrays, end to end. Narrow blocks (nearly all) are joined as bytes first: merges
    are mostly of many small blocks, where numpy's cost per call would dominate."""
    if not all(len(blob) == n * _NARROW_SIZE for blob, n in zip(blobs, sizes, strict=True)):
        return _Postings(
            *(np.concatenate(arrays) for arrays in zip(*map(_unpack, blobs, sizes), strict=True))
        )
    arrays, offset = [], 0
    for dtype in _NARROW:
        width = dtype.itemsize
        joined = b"".join(
            blob[offset * n : (offset + width) * n] for blob, n in zip(blobs, sizes, strict=True)
        )
        arrays.append(np.frombuffer(joined, dtype=dtype))
        offset += width
    return _Postings(*arrays)


def _intersect(lists: Sequence[_Postings]) -> _Postings:
    """The chunks holding every one of some terms, each term counted as often as its rarest one."""
    if len(lists) == 1:
        return lists[0]
    ids, tf, lengths = lists[0]
    for other in lists[1:]:
        ids, mine, theirs = np.intersect1d(ids, other.ids, assume_unique=True, return_indices=True)
        tf, lengths = np.minimum(tf[mine], other.tf[theirs]), lengths[mine]
    return _Postings(ids, tf, lengths)


def _group(
    id_parts: list[np.ndarray], value_parts: list[np.ndarray], length_parts: list[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Distinct chunk ids (ascending), the sum of their values, and (if given) their lengths."""
    if not id_parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
    ids = np.concatenate(id_parts).astype(np.int64, copy=False)
    values = np.concatenate(value_parts).astype(np.float64, copy=False)
    lengths = None if length_parts is None else np.concatenate(length_parts)
    if ids.size == 0:
        return ids, values, lengths
    low = int(ids.min())
    span = int(ids.max()) - low + 1
    if span <= 4 * ids.size + 4096:
        # Ids close together (the usual case: ids are given in order): counting beats sorting.
        offsets = ids - low
        present = np.flatnonzero(np.bincount(offsets, minlength=span))
        sums = np.bincount(offsets, weights=values, minlength=span)[present]
        if lengths is not None:
            by_offset = np.zeros(span, dtype=np.int64)
            by_offset[offsets] = lengths
            lengths = by_offset[present]
        return present + low, sums, lengths
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return (
        ids[starts],
        np.add.reduceat(values[order], starts),
        None if lengths is None else lengths[order][starts],
    )


def member(ids: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Which of `ids` are in `allowed`, by binary search (`allowed` sorted first if it is not)."""
    if allowed.size == 0:
        return np.zeros(ids.size, dtype=bool)
    if allowed.size > 1 and not (allowed[1:] >= allowed[:-1]).all():
        allowed = np.sort(allowed)
    positions = np.minimum(np.searchsorted(allowed, ids), allowed.size - 1)
    return allowed[positions] == ids


def _tier(n: int) -> int:
    """A block's tier by its size: 0 for 1 to FANOUT - 1 postings, 1 up to FANOUT² - 1, and so on."""
    tier = 0
    while n >= FANOUT:
        n //= FANOUT
        tier += 1
    return tier


def _full_tiers(blocks: dict[int, int]) -> list[list[int]]:
    """The groups of blocks (by seq, from their sizes by seq) to merge: the `FANOUT` or more blocks of the
    lowest tier that has as many, then again with the merged block in its tier, until no tier below
    `LAST_TIER` is full."""
    entries = [([seq], n) for seq, n in sorted(blocks.items())]
    while True:
        by_tier: defaultdict[int, list[int]] = defaultdict(list)
        for position, (_, n) in enumerate(entries):
            by_tier[_tier(n)].append(position)
        full = [tier for tier, positions in by_tier.items() if len(positions) >= FANOUT and tier < LAST_TIER]
        if not full:
            return [seqs for seqs, _ in entries if len(seqs) > 1]
        chosen = set(by_tier[min(full)])
        merged = ([seq for p in sorted(chosen) for seq in entries[p][0]], sum(entries[p][1] for p in chosen))
        entries = [entry for position, entry in enumerate(entries) if position not in chosen] + [merged]


@dataclass(frozen=True)
class _Plan:
    """What `compact` does with a term: merge all blocks (`whole`) or full tiers; `purge` the others."""

    term_id: int
    whole: bool
    purge: bool


def _block_sizes(
    db: sqlite3.Connection, term_ids: Sequence[int]
) -> defaultdict[int, dict[int, tuple[int, int]]]:
    """Some terms' blocks: (row id, postings) by seq, by term; from the index alone."""
    sizes: defaultdict[int, dict[int, tuple[int, int]]] = defaultdict(dict)
    for term_id, seq, n, rowid in _rows_in(
        db, "SELECT term_id, seq, n, id FROM keyword_blocks WHERE term_id IN ({})", term_ids
    ):
        sizes[term_id][seq] = (rowid, n)
    return sizes


@dataclass
class _Rewrite:
    """What a compaction reads and writes: the blocks of many terms at a time, in a few statements."""

    tombstones: _Tombstones
    deleted: list[tuple[int]] = field(default_factory=list)
    inserted: list[tuple[int, int, int, bytes]] = field(default_factory=list)
    replaced: list[tuple[int, bytes, int]] = field(default_factory=list)
    terms: list[tuple[int, int]] = field(default_factory=list)
    """(entries, term id) of every term looked at."""
    terms_done: int = 0
    postings_read: int = 0
    postings_written: int = 0
    dead_dropped: int = 0
    purged: bool = False

    @property
    def work(self) -> int:
        """What has been done, as `compact`'s budget counts it."""
        return self.postings_read + TERM_COST * self.terms_done

    def compact(
        self, db: sqlite3.Connection, plans: Sequence[_Plan], sizes: dict[int, dict[int, tuple[int, int]]]
    ) -> None:
        """Carry out some terms' plans, given their blocks (`_block_sizes`): what to write is gathered here,
        written by `apply`."""
        chosen = []
        for plan in plans:
            blocks = sizes.get(plan.term_id, {})
            groups = (
                [sorted(blocks)] if plan.whole else _full_tiers({seq: n for seq, (_, n) in blocks.items()})
            )
            grouped = {seq for group in groups for seq in group}
            chosen.append((plan, blocks, groups, set(blocks) - grouped if plan.purge else set()))
        rowids = [
            blocks[seq][0]
            for _, blocks, groups, filtered in chosen
            for seq in sorted(filtered.union(*groups))
        ]
        data = dict(_rows_in(db, "SELECT id, data FROM keyword_blocks WHERE id IN ({})", rowids))
        for plan, blocks, groups, filtered in chosen:
            self._compact_term(plan.term_id, blocks, groups, filtered, data)

    def _compact_term(
        self,
        term_id: int,
        blocks: dict[int, tuple[int, int]],
        groups: list[list[int]],
        filtered: set[int],
        data: dict[int, bytes],
    ) -> None:
        entries = {seq: n for seq, (_, n) in blocks.items()}
        if filtered:
            ordered = sorted(filtered)
            masks = self.tombstones.live(
                [(seq, _chunk_ids(data[blocks[seq][0]], blocks[seq][1])) for seq in ordered]
            )
            for seq, keep in zip(ordered, masks, strict=True):
                rowid, n = blocks[seq]
                self.postings_read += n
                if keep is None:
                    continue
                postings = _Postings(*(array[keep] for array in _unpack(data[rowid], n)))
                self.dead_dropped += n - postings.ids.size
                if postings.ids.size:
                    self.replaced.append((postings.ids.size, _pack(*postings), rowid))
                    self.postings_written += postings.ids.size
                else:
                    self.deleted.append((rowid,))
                entries[seq] = postings.ids.size
        for group in groups:
            sizes = [blocks[seq][1] for seq in group]
            postings = _unpack_many([data[blocks[seq][0]] for seq in group], sizes)
            self.postings_read += postings.ids.size
            keep = self.tombstones.keep(postings.ids, np.repeat(group, sizes))
            if keep is not None:
                postings = _Postings(*(array[keep] for array in postings))
                self.dead_dropped += sum(sizes) - postings.ids.size
            self.deleted.extend((blocks[seq][0],) for seq in group)
            for seq in group:
                del entries[seq]
            if postings.ids.size:
                # The merged block takes the newest sequence number of its blocks: its postings, all live
                # now, were written no later than that, so a later removal still finds them dead.
                order = np.argsort(postings.ids, kind="stable")
                self.inserted.append(
                    (term_id, max(group), postings.ids.size, _pack(*(a[order] for a in postings)))
                )
                self.postings_written += postings.ids.size
                entries[max(group)] = postings.ids.size
        self.terms.append((sum(entries.values()), term_id))
        self.terms_done += 1

    def apply(self, db: sqlite3.Connection) -> None:
        db.executemany("DELETE FROM keyword_blocks WHERE id = ?", self.deleted)
        db.executemany(
            "INSERT INTO keyword_blocks (term_id, seq, n, data) VALUES (?, ?, ?, ?)", self.inserted
        )
        db.executemany("UPDATE keyword_blocks SET n = ?, data = ? WHERE id = ?", self.replaced)
        db.executemany("UPDATE keyword_terms SET entries = ?, fresh = 0 WHERE term_id = ?", self.terms)
        # A term of removed chunks only, now without postings, is forgotten (its id may be given again).
        db.executemany(
            "DELETE FROM keyword_terms WHERE term_id = ? AND df = 0",
            [(term_id,) for entries, term_id in self.terms if entries == 0],
        )

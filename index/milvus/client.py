"""The Milvus connection of the Milvus backend: collection names and schemas, literal filter expressions,
and every pymilvus failure turned into a CiteQAError that says what to fix.

Quirks this module absorbs (measured against milvus-lite 3.2.2, docs/notes/milvus-lite-scouting.md):
- filter templates are not supported by milvus-lite: expressions are literal, their strings escaped here;
- a search without `output_fields` returns every field (the vectors too): callers always name theirs;
- collections come back released after a server restart: `open_collection` loads them (idempotent);
- pymilvus logs every failed call with a traceback before raising: silenced, the error raised says it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient, MilvusException

from citeqa.errors import BackendFailed, BackendUnavailable, IndexStoreError

logger = logging.getLogger(__name__)
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

# Milvus caps a search's topk and a query's offset + limit at 16,384 (milvus-lite does not: keep to it).
MAX_LIMIT = 16_384
# Ids per `in [...]` expression and per get: an expression is parsed whole, so keep it short.
IN_BATCH = 4096
# Milvus counts a VARCHAR's max_length in bytes (milvus-lite in characters): the largest there is.
MAX_VARCHAR_BYTES = 65_535
# A dummy vector for collections that hold no vector of their own (Milvus requires one per collection).
DUMMY = [0.0, 0.0]
# The BM25 function's tokenizer: jieba, exact mode (its default "search" mode adds overlapping sub-words,
# which count twice). The indexed text is CiteQA's own terms joined by spaces (index.text.terms), so jieba
# finds those terms again, and stopwords stay out as they do in the local keyword index.
ANALYZER = {"tokenizer": {"type": "jieba", "mode": "exact"}}
# BM25's parameters, as the local keyword index's (index.lexical.K1 and B).
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}
# Milvus's limits on a collection name: letters, digits and underscores, at most 255 characters.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


def connect(
    uri: str, token: str = "", database: str = "", timeout_s: float = 30.0, attempts: int = 3
) -> MilvusClient:
    """A client of the Milvus server at `uri` (BackendUnavailable, naming the settings, if it does not answer).

    The client has a channel of its own: pymilvus otherwise shares one per address, so one client's broken
    channel (milvus-lite closes channels whose keepalive pings come too often) can fail another's calls.
    A refused connection is tried again, `attempts` times in all, a second apart: a test session once saw
    its first connection to a server that had just answered refused, on a loaded machine."""

    def client() -> MilvusClient:
        with mapped_errors(uri):
            return MilvusClient(uri=uri, token=token, db_name=database, timeout=timeout_s, dedicated=True)

    for _ in range(attempts - 1):
        with contextlib.suppress(BackendUnavailable):
            return client()
        time.sleep(1.0)
    return client()


@contextlib.contextmanager
def mapped_errors(uri: str) -> Iterator[None]:
    """Turn pymilvus's failures into CiteQAErrors: an unreachable server into BackendUnavailable naming the
    settings to check, anything else Milvus refuses into BackendFailed with Milvus's own message."""
    try:
        yield
    except MilvusException as error:
        message = getattr(error, "message", str(error))
        if getattr(error, "code", None) == 2 or "Fail connecting" in message or "UNAVAILABLE" in message:
            raise BackendUnavailable(
                f"The Milvus server at {uri} does not answer ({message}). Check CITEQA_MILVUS_URI (and "
                "CITEQA_MILVUS_TOKEN, CITEQA_MILVUS_DB), and that the server runs, or set CITEQA_BACKEND=local."
            ) from None
        raise BackendFailed(f"Milvus at {uri} refused a request: {message}") from None


def collection_prefix(collection: str) -> str:
    """The prefix of every Milvus collection of a CiteQA collection: `citeqa_<name>_`, with the name's '_'
    and '-' (a CiteQA name's only characters Milvus names may not hold as they are) spelled `_u` and `_d`,
    so that two names never share a prefix."""
    escaped = collection.replace("_", "_u").replace("-", "_d")
    return f"citeqa_{escaped}_"


def collection_name_of(prefix_name: str) -> str | None:
    """The CiteQA collection whose meta collection is `prefix_name` (`citeqa_<name>_meta`); None for others."""
    match = re.fullmatch(r"citeqa_((?:[a-z0-9]|_u|_d)+)_meta", prefix_name)
    if match is None:
        return None
    return re.sub(r"_([ud])", lambda m: "_" if m.group(1) == "u" else "-", match.group(1))


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise IndexStoreError(f"{name!r} cannot name a Milvus collection: use a shorter collection name.")
    return name


def literal(value: str | int) -> str:
    """`value` as a literal of a filter expression: an int as it is, a string double-quoted with its
    backslashes, quotes and control characters escaped."""
    if isinstance(value, int):
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)


def in_list(field: str, values: Iterable[str | int]) -> str:
    """`field in [...]`, the values as literals."""
    return f"{field} in [{', '.join(literal(value) for value in values)}]"


def batches(values: Sequence[Any], size: int = IN_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def document_key(doc_id: str) -> int:
    """A document row's key: 63 bits of the doc id's SHA-1 (a collision is as likely as guessing it)."""
    return int.from_bytes(hashlib.sha1(doc_id.encode()).digest()[:8], "big") >> 1


def fit_bytes(text: str, limit: int = MAX_VARCHAR_BYTES) -> str:
    """`text` cut to at most `limit` bytes of UTF-8, at a character boundary."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode(errors="ignore")


# -- schemas ----------------------------------------------------------------------------------------------


def meta_schema() -> Any:
    """Key → JSON value: the collection's state (manifest, epoch, stamp)."""
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("value", DataType.JSON)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=len(DUMMY))
    return schema


def documents_schema() -> Any:
    """One row per committed document: its generation, place in the listing, chunk count and what a listing
    or a citation shows (`info`, JSON); the text is in the texts collection. The key is a hash of the doc id
    (`document_key`): pymilvus pages through a VARCHAR key with expressions it does not escape."""
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
    schema.add_field("generation", DataType.INT64)
    schema.add_field("position", DataType.INT64)
    schema.add_field("chunks", DataType.INT64)
    schema.add_field("info", DataType.JSON)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=len(DUMMY))
    return schema


def texts_schema() -> Any:
    """A document's text in parts of at most MAX_VARCHAR_BYTES, joined back in `part` order."""
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
    schema.add_field("generation", DataType.INT64)
    schema.add_field("part", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=len(DUMMY))
    return schema


def chunks_schema(dimension: int) -> Any:
    """Chunks with their dense vector and BM25's sparse one (computed by Milvus from `keywords`)."""
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    _unit_fields(schema)
    schema.add_field("chunk_index", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
    schema.add_field("first_sentence", DataType.INT64)
    schema.add_field("sentences", DataType.INT64)
    schema.add_field(
        "keywords",
        DataType.VARCHAR,
        max_length=MAX_VARCHAR_BYTES,
        enable_analyzer=True,
        analyzer_params=ANALYZER,
    )
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=["keywords"],
            output_field_names=["sparse"],
        )
    )
    return schema


def sentences_schema(dimension: int) -> Any:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    _unit_fields(schema)
    schema.add_field("chunk_id", DataType.INT64)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
    return schema


def _unit_fields(schema: Any) -> None:
    """What chunks and sentences both hold: their document and its generation, the document's section (so
    one filter expression restricts both), and their span and page (-1: none)."""
    schema.add_field("doc_id", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
    schema.add_field("generation", DataType.INT64)
    schema.add_field("section", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
    schema.add_field("char_start", DataType.INT64)
    schema.add_field("char_end", DataType.INT64)
    schema.add_field("page", DataType.INT64)


def vector_indexes(*, m: int, ef_construction: int, sparse: bool) -> Any:
    """The indexes of a collection of units: HNSW over the dense vectors (cosine), and with `sparse` the
    inverted index of BM25's sparse vectors."""
    params = MilvusClient.prepare_index_params()
    params.add_index(
        field_name="dense",
        index_type="HNSW",
        metric_type="COSINE",
        params={"M": m, "efConstruction": ef_construction},
    )
    if sparse:
        params.add_index(
            field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS
        )
    return params

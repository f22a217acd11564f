"""All configuration, read once from `CITEQA_*` environment variables."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from citeqa.errors import InvalidSettings
from index.ingest import SentenceVectors
from index.search import RankingWeights

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = PROJECT_ROOT / "data" / "sample"


# Marks the settings that are ranking weights, with the `RankingWeights` field each one sets.
_RANKING_WEIGHT = "ranking_weight"


def _ranking_weight(name: str) -> Any:
    """A setting for `RankingWeights.<name>`, with its default, bounds and description: declared once,
    in index.search, so that the two cannot drift apart."""
    info = copy.deepcopy(RankingWeights.model_fields[name])
    info.json_schema_extra = {_RANKING_WEIGHT: name}
    return info


class Settings(BaseSettings):
    """CiteQA settings. Every field can be set as `CITEQA_<FIELD>` (e.g. `CITEQA_DATA_DIR`)."""

    model_config = SettingsConfigDict(env_prefix="CITEQA_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "index",
        description="Folder that holds the index (SQLite documents + FAISS vectors + manifest).",
    )
    backend: Literal["local", "milvus"] = Field(
        default="local",
        description="Where collections keep their index: 'local' (CITEQA_DATA_DIR: SQLite + FAISS files) or "
        "'milvus' (the Milvus server of CITEQA_MILVUS_URI: nothing on disk, so several servers can share it).",
    )
    milvus_uri: str = Field(
        default="",
        description="The Milvus server with CITEQA_BACKEND=milvus, e.g. http://127.0.0.1:19530.",
    )
    milvus_token: str = Field(
        default="",
        description="The Milvus server's token ('user:password' or an API key), if it asks for one.",
    )
    milvus_db: str = Field(default="", description="The Milvus database; empty: the server's default one.")
    embedding_model: str = Field(
        default="embedded",
        description="'embedded' (the bundled multilingual-e5-small) or a sentence-transformers folder/name.",
    )
    model_cache: Path = Field(
        default=PROJECT_ROOT / "var" / "models",
        description="Where the embedded model is prepared once.",
    )
    quantize: bool = Field(
        default=False, description="Dynamic int8 quantisation of the model (faster, ~0.98 cosine)."
    )
    batch_size: int = Field(default=32, ge=1, le=1024, description="Passages encoded per batch.")
    sentence_vectors: SentenceVectors = Field(
        default="separate",
        description="How sentence vectors are made: 'separate' embeds each sentence on its own; 'late' "
        "pools them from their chunk's own forward pass (one pass per chunk, not per chunk and sentence).",
    )
    embedding_cache: Path | None = Field(
        default=None,
        description="The file of passage vectors remembered by text and model, so that text ingested or "
        "reindexed again is not embedded again; default: embedding-cache.sqlite3 in CITEQA_DATA_DIR.",
    )
    embedding_cache_mb: int = Field(
        default=512,
        ge=0,
        description="Most megabytes of vectors the embedding cache keeps (least recently used out first); "
        "0: no cache.",
    )
    query_batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description="How long, in ms, a question waits for others asked at the same time, to be encoded "
        "with them in one forward pass; 0 encodes each request's question on its own.",
    )
    query_batch_size: int = Field(
        default=32, ge=1, le=512, description="Most questions encoded in one forward pass."
    )
    query_cache_size: int = Field(
        default=1024,
        ge=0,
        description="Question vectors remembered (by exact text and model), so that a repeated question "
        "skips the model; 0 remembers none.",
    )
    torch_threads: int = Field(
        default=0,
        ge=0,
        description="Threads torch uses within one forward pass; 0 (the default): one per CPU this process "
        "may use. 1 leaves the other CPUs to the requests' searches (measured on a busy machine only).",
    )
    chunk_size: int = Field(
        default=300, ge=50, le=600, description="Maximum characters in a chunk (passage)."
    )
    chunk_overlap: int = Field(default=60, ge=0, description="Characters shared by neighbouring chunks.")
    sentence_weight: float = _ranking_weight("sentence")
    lexical_weight: float = _ranking_weight("lexical")
    translate_questions: bool = Field(
        default=True,
        description="Translate English questions over Chinese articles into Chinese keywords (CC-CEDICT).",
    )
    translated_weight: float = _ranking_weight("translated")
    highlight_keyword_weight: float = _ranking_weight("highlight_keywords")
    answerable_intercept: float = _ranking_weight("answerable_intercept")
    answerable_relevance: float = _ranking_weight("answerable_relevance")
    answerable_margin: float = _ranking_weight("answerable_margin")
    answerable_cjk: float = _ranking_weight("answerable_cjk")
    answerable_coverage: float = _ranking_weight("answerable_coverage")
    answerable_coverage_top: float = _ranking_weight("answerable_coverage_top")
    answerable_coverage_sentence: float = _ranking_weight("answerable_coverage_sentence")
    answerable_missing: float = _ranking_weight("answerable_missing")
    answerable_unheld: float = _ranking_weight("answerable_unheld")
    answerable_threshold_cjk: float = _ranking_weight("answerable_threshold_cjk")
    answerable_threshold_other: float = _ranking_weight("answerable_threshold_other")
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the HTTP server listens on.")
    # NoDecode: the environment's value is read by `_host_list`, as a JSON list or as comma-separated names.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default=["localhost", "127.0.0.1", "::1"],
        description=(
            "Host names the HTTP server answers to, comma-separated or as a JSON list; `*.example.org` "
            "allows its subdomains and `*` any name. A request with another Host header gets a 400, so "
            "that a web page whose name an attacker points at this machine (DNS rebinding) cannot reach "
            "it. Serving beyond this machine (`citeqa serve --host 0.0.0.0`), list the names clients use."
        ),
    )
    sample_corpus: Path = Field(
        default=SAMPLE_CORPUS,
        description="The bundled sample report (`make run` indexes it into an empty index).",
    )
    max_upload_mb: int = Field(
        default=50, ge=1, description="Largest upload (all its files) accepted by POST .../documents, in MB."
    )
    max_upload_files: int = Field(default=100, ge=1, description="Most files in one upload.")
    max_article_chars: int = Field(
        default=500_000, ge=1000, description="Longest article an upload may hold, in characters."
    )
    max_request_kb: int = Field(default=256, ge=1, description="Largest JSON request body, in KB.")
    max_filter_values: int = Field(
        default=1000, ge=1, description="Most values in one search filter (sections or doc_ids)."
    )
    max_queued_jobs: int = Field(
        default=16, ge=1, description="Ingest jobs that may wait or run at once; more get a 429."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    keys_file: Path | None = Field(
        default=None,
        description="The API key file (`citeqa keys create`); default: keys.json in CITEQA_DATA_DIR. With "
        "at least one key in it, every /v1 call needs `Authorization: Bearer <key>`.",
    )
    allow_anonymous: bool = Field(
        default=False,
        description="Let `citeqa serve` listen on a non-loopback address with no API key: anyone who "
        "reaches the port may then read, upload and delete.",
    )

    @property
    def embedding_cache_path(self) -> Path:
        return self.embedding_cache or self.data_dir / "embedding-cache.sqlite3"

    @property
    def keys_path(self) -> Path:
        return self.keys_file or self.data_dir / "keys.json"

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.lstrip().startswith("[") else value.split(",")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _some_host(cls, hosts: list[str]) -> list[str]:
        # Host names are case-insensitive: compared in lower case.
        hosts = [host.strip().lower() for host in hosts if host.strip()]
        if not hosts:
            raise ValueError("list at least one host name, or * for any")
        return hosts

    @model_validator(mode="after")
    def _overlap_smaller_than_chunk(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"CITEQA_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than "
                f"CITEQA_CHUNK_SIZE ({self.chunk_size})."
            )
        return self

    @model_validator(mode="after")
    def _milvus_named(self) -> Settings:
        if self.backend == "milvus" and not self.milvus_uri:
            raise ValueError(
                "CITEQA_BACKEND=milvus needs CITEQA_MILVUS_URI, the Milvus server's address "
                "(e.g. http://127.0.0.1:19530)."
            )
        return self

    def ranking_weights(self) -> RankingWeights:
        return RankingWeights(
            **{
                info.json_schema_extra[_RANKING_WEIGHT]: getattr(self, setting)
                for setting, info in type(self).model_fields.items()
                if isinstance(info.json_schema_extra, dict) and _RANKING_WEIGHT in info.json_schema_extra
            }
        )


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, read once from the environment (and `.env`).

    Raises InvalidSettings naming each variable that has a value it cannot take."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise InvalidSettings(f"Invalid settings: {problems}") from None


def _problem(error: Any) -> str:
    if not error["loc"]:  # a rule between settings, whose message names them
        return error["msg"].removeprefix("Value error, ")
    return f"CITEQA_{'_'.join(map(str, error['loc'])).upper()}: {error['msg']}"

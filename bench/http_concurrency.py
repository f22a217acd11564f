"""Concurrent questions over HTTP (issue 12): QPS and latency of `citeqa serve` for 1, 4 and 16 clients.

Starts `citeqa serve` on a free loopback port once per `--batch-wait-ms` value (CITEQA_QUERY_BATCH_WAIT_MS;
0 switches batching off), all on one index of the sample report, built once into `--cache-dir`. Then, for
each number of clients in turn and each server side by side, the clients (threads, one keep-alive httpx
connection each) ask `POST /v1/search` back to back for `--seconds` (or `--max-requests`), taking questions
in turn from the question files. The question cache is off by default (`--cache-size 0`): the files hold
a few hundred questions, which a long run repeats, and a remembered question would skip the model.

Also measured in the same run, before the servers start: `Searcher.search` in this process on the same
questions (batching and cache off), the time the HTTP figures are held against; and each server's start
(to /readyz, and to its first English answer, which waits for the CC-CEDICT translator).

    PYTHONPATH=. .venv/bin/python bench/http_concurrency.py                      # 60 s per cell
    PYTHONPATH=. .venv/bin/python bench/http_concurrency.py --seconds 15 --batch-wait-ms 2 0 --json r.json
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_QUESTIONS = [
    REPO_ROOT / "tests" / "data" / "seed_dev.jsonl",
    REPO_ROOT / "data" / "eval" / "dev2-tune.jsonl",
]
# The targets of issue 12, checked in the summary.
SCALING_TARGET = 2.5  # QPS of the most clients over QPS of one
TAIL_TARGET = 4.0  # p95 of the most clients over p50 of one
OVERHEAD_TARGET = 1.2  # p50 of one client over HTTP over p50 of Searcher.search in process
TOP_K = 5


@dataclass
class Cell:
    """One server's figures for one number of clients."""

    batch_wait_ms: float
    torch_threads: int
    clients: int
    requests: int
    errors: int
    seconds: float
    qps: float
    p50_ms: float
    p95_ms: float
    first_errors: list[str] = field(default_factory=list)


@dataclass
class Server:
    batch_wait_ms: float
    torch_threads: int
    url: str
    process: subprocess.Popen
    log: Path
    ready_s: float
    translator_s: float


def read_questions(paths: Sequence[Path]) -> list[str]:
    """The distinct questions of the files, shuffled with a fixed seed (Chinese and English mixed)."""
    questions = [
        json.loads(line)["question"]
        for path in paths
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    distinct = list(dict.fromkeys(questions))
    random.Random(12).shuffle(distinct)
    return distinct


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(data_dir: Path, **settings: Any) -> dict[str, str]:
    # PYTHONPATH: the checkout's code, also when the virtualenv's editable install points at another one.
    env = {**os.environ, "CITEQA_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO_ROOT)}
    env.update({f"CITEQA_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def ensure_index(data_dir: Path, corpus: Path, **settings: Any) -> None:
    """Index `corpus` into `data_dir` (or the backend `settings` name) unless it holds documents already."""
    command = [sys.executable, "-m", "service", "ingest", str(corpus), "--if-empty"]
    started = time.perf_counter()
    env = server_env(data_dir, **settings)
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"Could not index {corpus} into {data_dir}:\n{done.stderr[-3000:]}")
    print(f"index {data_dir}: ready in {time.perf_counter() - started:.1f} s", flush=True)


def in_process_search_ms(data_dir: Path, questions: Sequence[str]) -> dict[str, float]:
    """p50 and p95 of `Searcher.search` in this process, model encoding included, no batching or cache."""
    from citeqa.settings import Settings
    from citeqa.wiring import Resources

    settings = Settings(data_dir=data_dir, query_batch_wait_ms=0, query_cache_size=0)  # torch threads as set
    resources = Resources.load(settings)
    try:
        searcher = resources.collection().searcher
        for question in warm_up_questions(questions):  # the translator, then a few of each script
            searcher.search(question, top_k=TOP_K)
        times = []
        for question in questions:
            started = time.perf_counter()
            searcher.search(question, top_k=TOP_K)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        resources.close()
    return {"searches": len(times), "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}


def warm_up_questions(questions: Sequence[str]) -> list[str]:
    english = [q for q in questions if q.isascii()][:2]
    other = [q for q in questions if not q.isascii()][:2]
    return english + other


def start_server(
    data_dir: Path, batch_wait_ms: float, threads: int, cache_size: int, log_dir: Path, **settings: Any
) -> Server:
    """`citeqa serve` on a free port, ready; `settings` are more CITEQA_* values (e.g. backend="milvus")."""
    port = free_port()
    env = server_env(
        data_dir,
        port=port,
        query_batch_wait_ms=batch_wait_ms,
        torch_threads=threads,
        query_cache_size=cache_size,
        **settings,
    )
    label = "-".join(f"{name}-{value}" for name, value in settings.items() if name == "backend")
    log = log_dir / f"serve-wait-{batch_wait_ms:g}ms-threads-{threads}{'-' + label if label else ''}.log"
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = started + 600
    while True:
        if process.poll() is not None:
            sys.exit(f"citeqa serve exited with {process.returncode}; its log: {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        if time.perf_counter() > deadline:
            process.kill()
            sys.exit(f"citeqa serve not ready after 600 s; its log: {log}")
        time.sleep(0.1)
    ready_s = time.perf_counter() - started
    return Server(batch_wait_ms, threads, url, process, log, ready_s, translator_s=0.0)


def warm_up(server: Server, questions: Sequence[str], started_at: float) -> None:
    """The first English question waits for the translator: asked before any load is measured."""
    with httpx.Client(base_url=server.url, timeout=600) as client:
        for question in warm_up_questions(questions):
            client.post("/v1/search", json={"question": question, "top_k": TOP_K}).raise_for_status()
            if not server.translator_s:
                server.translator_s = time.perf_counter() - started_at


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()


def run_clients(
    server: Server, clients: int, seconds: float, max_requests: int, questions: Sequence[str]
) -> Cell:
    """`clients` threads asking back to back until `seconds` pass or `max_requests` are sent in all."""
    turns = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    deadline = 0.0

    def client_loop() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            start.wait()
            while time.perf_counter() < deadline:
                with lock:
                    turn = next(turns)
                if turn >= max_requests:
                    return
                question = questions[turn % len(questions)]
                sent = time.perf_counter()
                try:
                    response = client.post("/v1/search", json={"question": question, "top_k": TOP_K})
                    failure = (
                        None
                        if response.status_code == 200
                        else f"HTTP {response.status_code}: {response.text[:200]}"
                    )
                except httpx.HTTPError as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - sent) * 1000
                with lock:
                    if failure:
                        errors.append(failure)
                    else:
                        latencies.append(elapsed)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    done = len(latencies) + len(errors)
    return Cell(
        batch_wait_ms=server.batch_wait_ms,
        torch_threads=server.torch_threads,
        clients=clients,
        requests=done,
        errors=len(errors),
        seconds=round(took, 2),
        qps=round(len(latencies) / took, 2),
        p50_ms=round(percentile(latencies, 50), 1),
        p95_ms=round(percentile(latencies, 95), 1),
        first_errors=errors[:3],
    )


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def ratios(cells: Sequence[Cell], in_process_p50: float) -> dict[str, float]:
    """The targets' ratios for one server: most clients against one client, one client against in-process."""
    one = next(cell for cell in cells if cell.clients == 1)
    most = max(cells, key=lambda cell: cell.clients)
    return {
        "clients": most.clients,
        "qps_scaling": round(most.qps / one.qps, 2),
        "p95_most_over_p50_one": round(most.p95_ms / one.p50_ms, 2),
        "http_p50_over_in_process_p50": round(one.p50_ms / in_process_p50, 2),
    }


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "loadavg_start": [round(load, 2) for load in os.getloadavg()],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| batch wait (ms) | torch threads | clients | requests | errors | QPS | p50 ms | p95 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in result["cells"]:
        lines.append(
            f"| {cell['batch_wait_ms']:g} | {cell['torch_threads']} | {cell['clients']} | {cell['requests']} | {cell['errors']} | "
            f"{cell['qps']:.1f} | {cell['p50_ms']:.1f} | {cell['p95_ms']:.1f} |"
        )
    inproc = result["in_process"]
    lines += [
        "",
        f"In process, `Searcher.search` (encoding included, {inproc['searches']} questions): "
        f"p50 {inproc['p50_ms']:.1f} ms, p95 {inproc['p95_ms']:.1f} ms.",
        "",
        "| batch wait (ms) | torch threads | start to /readyz (s) | to first English answer (s) | QPS scaling (≥ 2.5) | "
        "p95 of most / p50 of one (≤ 4) | HTTP p50 / in-process p50 (≤ 1.2) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for server in result["servers"]:
        r = server["ratios"]
        lines.append(
            f"| {server['batch_wait_ms']:g} | {server['torch_threads']} | {server['ready_s']:.1f} | {server['translator_s']:.1f} | "
            f"{r['qps_scaling']:.2f} ({r['clients']} clients) | {r['p95_most_over_p50_one']:.2f} | "
            f"{r['http_p50_over_in_process_p50']:.2f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60, help="How long each cell runs (default 60).")
    parser.add_argument("--max-requests", type=int, default=20_000, help="Most requests in one cell.")
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1, 4, 16], help="Concurrent clients (1 first)."
    )
    parser.add_argument(
        "--batch-wait-ms", type=float, nargs="+", default=[2.0, 0.0],
        help="One server per value of CITEQA_QUERY_BATCH_WAIT_MS, measured side by side (0: no batching).",
    )  # fmt: skip
    parser.add_argument(
        "--torch-threads", type=int, nargs="+", default=[1],
        help="One server per value of CITEQA_TORCH_THREADS (and per batch wait), side by side.",
    )  # fmt: skip
    parser.add_argument("--cache-size", type=int, default=0, help="CITEQA_QUERY_CACHE_SIZE of the servers.")
    parser.add_argument(
        "--questions", type=Path, nargs="+", default=DEFAULT_QUESTIONS, help="JSONL question files."
    )
    parser.add_argument("--corpus", type=Path, default=REPO_ROOT / "data" / "sample", help="What to index.")
    parser.add_argument(
        "--cache-dir", type=Path, default=REPO_ROOT / "var" / "bench" / "http-sample",
        help="The index of --corpus, built on the first run and reused (another corpus: another folder).",
    )  # fmt: skip
    parser.add_argument("--in-process-searches", type=int, default=100, help="Searches timed in process.")
    parser.add_argument("--json", type=Path, help="Write every figure here.")
    args = parser.parse_args(argv)
    if 1 not in args.clients:
        parser.error("--clients must include 1: the ratios are against one client.")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    machine = machine_info()
    print(
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), load average {machine['loadavg_start']}",
        flush=True,
    )
    questions = read_questions(args.questions)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    ensure_index(args.cache_dir, args.corpus)
    in_process = in_process_search_ms(args.cache_dir, questions[: args.in_process_searches])
    print(f"in process: {in_process}", flush=True)
    servers: list[Server] = []
    cells: list[Cell] = []
    try:
        for wait, threads in itertools.product(args.batch_wait_ms, args.torch_threads):
            started = time.perf_counter()
            server = start_server(args.cache_dir, wait, threads, args.cache_size, args.cache_dir.parent)
            servers.append(server)
            warm_up(server, questions, started)
            print(
                f"server, batch wait {wait:g} ms, {threads} torch threads: /readyz after {server.ready_s:.1f} s",
                flush=True,
            )
        # Side by side: every server takes each load in turn, so that a change of the machine's other load
        # falls on all of them alike.
        for clients in sorted(args.clients):
            for server in servers:
                cell = run_clients(server, clients, args.seconds, args.max_requests, questions)
                cells.append(cell)
                print(asdict(cell), flush=True)
    finally:
        for server in servers:
            stop_server(server)
    result = {
        "machine": {**machine, "loadavg_end": [round(load, 2) for load in os.getloadavg()]},
        "command": " ".join(sys.argv),
        "seconds": args.seconds,
        "cache_size": args.cache_size,
        "questions": len(questions),
        "in_process": in_process,
        "cells": [asdict(cell) for cell in cells],
        "servers": [
            {
                "batch_wait_ms": server.batch_wait_ms,
                "torch_threads": server.torch_threads,
                "ready_s": round(server.ready_s, 1),
                "translator_s": round(server.translator_s, 1),
                "ratios": ratios(
                    [c for c in cells if c.batch_wait_ms == server.batch_wait_ms], in_process["p50_ms"]
                ),
            }
            for server in servers
        ],
    }
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

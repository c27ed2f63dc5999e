"""k-NN search over real MiniLM vectors: FaissIndex (HNSW) against the exact index.

    python -m tests.bench.bench_knn [--sizes 10000,100000] [--queries 1000] [--quick]

The vectors are all-MiniLM-L6-v2 embeddings of varied product sentences (catalog titles and
descriptions in the words of different roles, industries, team sizes, actions and goals; see
`recommender.synthetic.activity_texts`), never random vectors. Embedding 100k sentences takes
minutes on two cores the first time; the vectors are cached under the temp directory (in chunks,
so an interrupted run resumes) and reruns start at once.

For each size: build both indexes, then search one query at a time (one thread, as a serving core
does) with held-out sentences that are not in the index. Baseline in the same run: the exact
index (numpy brute force), which is also the truth that recall@10 is measured against. Budget
(Cairn's own): recall@10 >= 0.95 at <= 300 µs per query over 100k vectors, judged on the median
query time (the mean and p99 are printed too: on a shared machine they include time the process
was not scheduled at all).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from app.demo.catalog import demo_items
from recommender.embedder import SentenceTransformerEmbedder
from recommender.index import ExactIndex, FaissIndex, recall_at_k
from recommender.synthetic import activity_texts
from tests.bench._common import CORES, SummaryRow, percentile, report

_CHUNK = 5000
_SEED = 11
_RECALL_BUDGET = 0.95
_US_BUDGET = 300.0
_EF_SWEEP = (32, 64, 128)


def cached_vectors(n: int, cache_dir: Path) -> NDArray[np.float32]:
    """The first `n` activity sentences embedded with MiniLM, from the cache where possible."""
    texts = activity_texts(n, demo_items(), seed=_SEED)
    embedder = SentenceTransformerEmbedder(None, batch_size=128)
    key = hashlib.sha256(f"{embedder.model_id}|{_SEED}|{_CHUNK}".encode()).hexdigest()[:12]
    folder = cache_dir / f"knn-minilm-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    parts: list[NDArray[np.float32]] = []
    started = time.perf_counter()
    for start in range(0, n, _CHUNK):
        chunk = texts[start : start + _CHUNK]
        path = folder / f"{start // _CHUNK:05d}-{len(chunk)}.npy"
        digest_path = path.with_suffix(".sha")
        digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()
        if path.exists() and digest_path.exists() and digest_path.read_text() == digest:
            parts.append(np.load(path))
            continue
        t0 = time.perf_counter()
        vectors = embedder.embed(chunk)
        np.save(path, vectors)
        digest_path.write_text(digest)
        parts.append(vectors)
        done = start + len(chunk)
        rate = len(chunk) / (time.perf_counter() - t0)
        print(f"  embedded {done:,}/{n:,} sentences ({rate:.0f}/s, cached in {folder})")
    if time.perf_counter() - started > 1:
        print(f"  vectors ready in {time.perf_counter() - started:.0f} s", flush=True)
    return np.concatenate(parts)[:n]


def _time_searches(
    index: ExactIndex | FaissIndex, queries: NDArray[np.float32], k: int
) -> tuple[list[list[str]], list[float]]:
    """Ids found per query and µs per query, one query at a time."""
    found: list[list[str]] = []
    samples: list[float] = []
    clock = time.perf_counter_ns
    for q in queries[: min(20, len(queries))]:  # warm up
        index.search(q, k)
    gc.collect()
    for q in queries:
        t0 = clock()
        result = index.search(q, k)
        samples.append((clock() - t0) / 1000.0)
        found.append(result.ids[0])
    return found, samples


def run_size(
    vectors: NDArray[np.float32], queries: NDArray[np.float32], k: int = 10
) -> tuple[list[SummaryRow], dict[str, float]]:
    n = len(vectors)
    ids = [f"s{i}" for i in range(n)]
    print(f"\n{n:,} MiniLM vectors, {len(queries):,} held-out queries, k={k}")

    exact = ExactIndex(vectors.shape[1])
    exact.add(ids, vectors)
    truth, exact_us = _time_searches(exact, queries, k)

    index = FaissIndex(vectors.shape[1], auto_rebuild=False, build_threads=CORES)
    index.add(ids, vectors)
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 5 or done == total:
            last[0] = time.perf_counter()
            print(f"  building {index_kind(n, index)}: {done:,}/{total:,}", flush=True)

    index.rebuild(background=False, progress=progress)
    build_s = time.perf_counter() - t0
    print(f"  built {index.kind} in {build_s:.1f} s ({CORES} build threads)")

    exact_p50, exact_mean = percentile(exact_us, 50), float(np.mean(exact_us))
    print(f"  {'index':<24} {'µs/query p50':>12} {'mean':>8} {'p99':>8} {'recall@10':>10}")
    print(
        f"  {'exact (numpy)':<24} {exact_p50:>12.1f} {exact_mean:>8.1f} "
        f"{percentile(exact_us, 99):>8.1f} {1.0:>10.4f}"
    )
    stats: dict[str, float] = {}
    default_ef = index.ef_search
    for ef in sorted({*_EF_SWEEP, default_ef}):
        index.ef_search = ef
        found, faiss_us = _time_searches(index, queries, k)
        recall = recall_at_k(found, truth, k)
        p50, mean = percentile(faiss_us, 50), float(np.mean(faiss_us))
        label = f"faiss {index.kind} ef={ef}" + (" (default)" if ef == default_ef else "")
        print(
            f"  {label:<24} {p50:>12.1f} {mean:>8.1f} {percentile(faiss_us, 99):>8.1f} "
            f"{recall:>10.4f}"
        )
        if ef == default_ef:
            stats = {"recall": recall, "p50": p50, "mean": mean, "build_s": build_s}
    index.ef_search = default_ef
    met = stats["recall"] >= _RECALL_BUDGET and stats["p50"] <= _US_BUDGET
    print(
        f"  ratio exact / faiss: {exact_p50 / stats['p50']:.1f}x (median), "
        f"{exact_mean / stats['mean']:.1f}x (mean); budget recall@10 >= {_RECALL_BUDGET} at <= "
        f"{_US_BUDGET:.0f} µs/query (median): {'met' if met else 'MISSED'}"
    )
    row = SummaryRow(
        "knn",
        f"{n // 1000}k MiniLM vectors: faiss {index.kind} vs exact, recall@10 "
        f"{stats['recall']:.3f}",
        f"{stats['p50']:.0f} µs p50 ({stats['mean']:.0f} mean)",
        f"{exact_p50:.0f} µs p50",
        f"{exact_p50 / stats['p50']:.1f}x",
        f"recall>=0.95 at <=300 µs: {'met' if met else 'MISSED'}",
    )
    return [row], stats


def index_kind(n: int, index: FaissIndex) -> str:
    return "hnsw" if n > index.hnsw_threshold else "flat"


def run(sizes: list[int], queries: int, cache_dir: Path) -> list[SummaryRow]:
    total = max(sizes) + queries
    print(f"MiniLM vectors of {total:,} product sentences ({CORES} cores)")
    vectors = cached_vectors(total, cache_dir)
    held_out = vectors[-queries:]
    rows: list[SummaryRow] = []
    for size in sizes:
        size_rows, _ = run_size(vectors[:size], held_out)
        rows += size_rows
    return rows


def run_cli(argv: list[str] | None = None) -> list[SummaryRow]:
    parser = argparse.ArgumentParser(description="FAISS vs exact k-NN on real MiniLM vectors")
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated index sizes")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--cache-dir",
        default=str(Path(tempfile.gettempdir()) / "cairn-bench"),
        help="where embedded vectors are kept between runs",
    )
    parser.add_argument("--quick", action="store_true", help="10k vectors, 200 queries")
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    queries = 200 if args.quick else args.queries
    rows = run(sizes, queries, Path(args.cache_dir))
    return report(rows)


if __name__ == "__main__":
    run_cli()

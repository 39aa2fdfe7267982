"""FAISS's side of the search benchmark (search.BenchmarkSearch drives it).

Reads a bank and queries as float32 .npy files (rows L2-normalised by the
caller: inner product is cosine), and measures, on this machine's cores:

- IndexFlatIP (exact): build time, queries per second for one query at a
  time and for batches of 1,000, recall@10 against the ground truth;
- IndexHNSWFlat (inner product; M, efConstruction given): build time, and
  for each efSearch asked, queries per second (one query at a time and
  batches of 1,000) and recall@10;
- the resident memory after each build.

The ground truth (the true top 10 of each query, by NumPy's float32
matrix product over the whole bank: neither FAISS's code nor the project's)
is written to --truth as int32 [queries, 10] when that file is not there,
for the Go side to score itself by the same truth. Prints one JSON object.
"""

import argparse
import json
import resource
import time

import faiss
import numpy as np


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def brute_force(bank, queries, k=10, block=65536):
    """The k largest inner products of each query over the bank, by blocks."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for b0 in range(0, len(bank), block):
        s = queries @ np.asarray(bank[b0:b0 + block]).T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k] if s.shape[1] > k else np.tile(np.arange(s.shape[1]), (len(s), 1))
        cand_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], 1)
        cand_i = np.concatenate([best_i, top + b0], 1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


def recall(found, truth):
    k = truth.shape[1]
    hits = sum(len(set(f[:k]) & set(t)) for f, t in zip(found, truth))
    return hits / truth.size


def qps(index, q, batch, k=10, budget=20.0, most=None):
    """Queries per second of batches of `batch` (one at a time for 1), over
    the queries or until `budget` seconds pass; and what was found."""
    n = len(q) if most is None else min(len(q), most)
    found = np.zeros((n, k), dtype=np.int64)
    done = 0
    t0 = time.perf_counter()
    while done < n:
        end = min(done + batch, n)
        _, idx = index.search(q[done:end], k)
        found[done:end] = idx
        done = end
        if time.perf_counter() - t0 > budget and done >= batch:
            break
    return done / (time.perf_counter() - t0), found[:done]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--ef-search", default="16,32,64,128,256")
    ap.add_argument("--no-hnsw", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        faiss.omp_set_num_threads(a.threads)
    bank = np.load(a.bank, mmap_mode="r")
    queries = np.ascontiguousarray(np.load(a.queries))
    try:
        truth = np.load(a.truth)
    except FileNotFoundError:
        truth = brute_force(bank, queries).astype(np.int32)
        np.save(a.truth, truth)
    out = {"faiss": faiss.__version__, "threads": faiss.omp_get_max_threads(),
           "bank": list(bank.shape), "queries": len(queries)}
    bank = np.ascontiguousarray(bank)
    base = rss_mib()

    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(bank.shape[1])
    flat.add(bank)
    r = {"build_s": time.perf_counter() - t0, "rss_mib_added": rss_mib() - base}
    for batch in (1, 1000):
        v, found = qps(flat, queries, batch, most=200 if batch == 1 else None)
        r[f"qps_batch_{batch}"] = v
        r[f"recall10_batch_{batch}"] = recall(found, truth[:len(found)])
    out["flat_ip"] = r
    del flat

    if not a.no_hnsw:
        base = rss_mib()
        t0 = time.perf_counter()
        h = faiss.IndexHNSWFlat(bank.shape[1], a.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = a.ef_construction
        h.add(bank)
        r = {"m": a.hnsw_m, "ef_construction": a.ef_construction, "build_s": time.perf_counter() - t0,
             "rss_mib_added": rss_mib() - base, "ef": []}
        for ef in [int(x) for x in a.ef_search.split(",")]:
            h.hnsw.efSearch = ef
            e = {"ef_search": ef}
            for batch in (1, 1000):
                v, found = qps(h, queries, batch)
                e[f"qps_batch_{batch}"] = v
                e[f"recall10_batch_{batch}"] = recall(found, truth[:len(found)])
            r["ef"].append(e)
        out["hnsw"] = r
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()

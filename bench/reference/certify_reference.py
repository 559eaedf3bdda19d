"""A straightforward PyTorch implementation of RetrievalGuard's Monte-Carlo loop, the
baseline of bench/p2_python_reference.sh: what a researcher writes after Cohen et al.'s
core.py. Per query, batches of noisy copies (noise N(0, sigma^2) in [0,1] pixel space) go
through the TorchScript model under inference_mode; the l2-normalised embeddings are
summed in float64. Prints one JSON line: samples/s and the mean ||F-hat|| (to check it
computes what rguard computes).

Queries: --fashion-ids FILE (rguard's certificates.csv: the same Fashion-MNIST queries,
classes 5-9 of the test split in file order) or --random-shape C,H,W (random images of that
shape; the cost does not depend on the pixels). --optimize runs the model through
torch.jit.freeze + optimize_for_inference first (what rguard's torchscript backbone does).

The rate is only comparable on an otherwise idle machine: with as many OpenMP threads as
cores, another process on one core makes libgomp's barriers wait for the preempted thread
(measured on 2 cores: 11.7k -> 2.05k samples/s, the same for any straightforward loop). The
JSON line therefore also gives the cores this process used and the cores other processes
used during the timed loop (Linux /proc/stat), and a warning goes to stderr when other
processes used more than --max-other-cores (exit status 3 with --strict).
"""
import argparse
import csv
import gzip
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from cpu_load import busy_cpu_seconds, cpu_seconds  # noqa: E402


def fashion_queries(certificates):
    with open(certificates) as f:
        ids = [int(row["query_id"]) for row in csv.DictReader(f)]
    d = "/usr/share/datasets/fashion-mnist/"
    with gzip.open(d + "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(d + "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    evaluation = images[labels >= 5]
    return torch.from_numpy(evaluation[ids].astype(np.float32) / 255.0)


class Timed:
    """Wall time of a block, and the CPU used by this process and by all others meanwhile."""

    def __enter__(self):
        self.busy, self.own, self.start = busy_cpu_seconds(), cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        own = cpu_seconds() - self.own
        self.cpu_cores = own / self.seconds
        self.other_cores = max(0.0, busy_cpu_seconds() - self.busy - own) / self.seconds


def report(a, samples, t, **extra):
    print(json.dumps({"samples_per_s": samples / t.seconds, "seconds": t.seconds, **extra,
                      "cpu_cores": round(t.cpu_cores, 2), "other_cores": round(t.other_cores, 2)}))
    if t.other_cores > a.max_other_cores:
        print(f"certify_reference.py: other processes used {t.other_cores:.2f} cores during the "
              f"timed loop ({os.cpu_count()} cores, {a.threads} threads): the rate is not comparable; "
              "rerun on an idle machine", file=sys.stderr)
        if a.strict:
            sys.exit(3)


@torch.inference_mode()
def mean_embeddings(model, queries, n, batch, sigma):
    out = []
    for x in queries:
        total = None
        remaining = n
        while remaining > 0:
            b = min(batch, remaining)
            noisy = x.unsqueeze(0).repeat(b, 1, 1, 1)
            noisy = noisy + torch.randn_like(noisy) * sigma
            e = torch.nn.functional.normalize(model(noisy), dim=1).double().sum(0)
            total = e if total is None else total + e
            remaining -= b
        out.append(total / n)
    return torch.stack(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--sigma", type=float, default=0.25)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--fashion-ids")
    p.add_argument("--random-shape")
    p.add_argument("--queries", type=int, default=0)
    p.add_argument("--optimize", action="store_true")
    p.add_argument("--forward-only", action="store_true",
                   help="time forward passes on one fixed batch (no noise, no loop): the raw rate")
    p.add_argument("--max-other-cores", type=float, default=0.2,
                   help="warn when other processes used more CPU than this during the timed loop")
    p.add_argument("--strict", action="store_true", help="and then exit with status 3")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.fashion_ids:
        queries = fashion_queries(a.fashion_ids)
    else:
        queries = torch.rand([a.queries] + [int(v) for v in a.random_shape.split(",")])
    model = torch.jit.load(a.model).eval()
    if a.optimize:
        model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
    if a.forward_only:
        batch = queries[:1].repeat(a.batch, *([1] * (queries.dim() - 1)))
        with torch.inference_mode():
            model(batch)
            model(batch)
            done = 0
            with Timed() as t:
                while done < a.n * len(queries):
                    model(batch)
                    done += a.batch
        report(a, done, t, mean_f_norm=0)
        return
    # warm-up: one whole query, i.e. every batch size of the timed loop (the last batch is
    # n % batch when batch does not divide n), so the profiling executor has specialised for each
    mean_embeddings(model, queries[:1], a.n, a.batch, a.sigma)
    with Timed() as t:
        f_hat = mean_embeddings(model, queries, a.n, a.batch, a.sigma)
    report(a, len(queries) * a.n, t, queries=len(queries), mean_f_norm=f_hat.norm(dim=1).mean().item())


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Debian's PyTorch on the benchmark models (scripts/bench-torch.sh): forward and forward + input-gradient passes,
and a plain PGD loop with the budget of the gate check in bench-pgd.yaml. Prints one JSON line per measurement.

usage: pytorch_bench.py DIR THREADS REPEAT [pgd EPSILON MODEL]
Flush-to-zero is on (torch.set_flush_denormal(True)), as in Gate's torch engine; oneDNN stays as Debian ships it."""
import json, os, re, statistics, sys, time
import numpy as np
import torch
import torch.nn.functional as F
from models import build, NAMES

folder, threads, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
assert torch.set_flush_denormal(True)


def timed(fn):
    fn()  # warm-up, not recorded
    t = []
    for _ in range(repeat):
        s = time.perf_counter(); fn(); t.append((time.perf_counter() - s) * 1e3)
    return {"min": round(min(t), 3), "median": round(statistics.median_low(t), 3), "n": len(t)}


def seed_like(y):  # Gate's gate-run gradient seed: w[i] = ((i mod 7) - 3) / 3
    return (torch.arange(y.numel()) % 7 - 3).float().div(3).reshape(y.shape)


if len(sys.argv) > 4 and sys.argv[4] == "pgd":
    # The policy's check: PGD, 10 steps, 1 random start, eps, alpha = 5 eps / steps (alpha/2 for the last quarter).
    model = sys.argv[6] if len(sys.argv) > 6 else "resnet18-32"
    m, _ = build(model)
    x0 = torch.from_numpy(np.load(f"{folder}/pgd_x-{model}.npy")); y = torch.from_numpy(np.load(f"{folder}/pgd_y-{model}.npy"))
    eps, steps = float(sys.argv[5]), 10

    step_ms = []  # every gradient step of the timed runs: the steady per-step cost Gate's gradientPasses compares with

    def pgd():
        g = torch.Generator().manual_seed(2)
        x = (x0 + (torch.rand(x0.shape, generator=g) * 2 - 1) * eps).clamp(0, 1)
        for t in range(steps):
            s = time.perf_counter()
            x.requires_grad_(True)
            loss = F.cross_entropy(m(x), y, reduction="sum")
            grad, = torch.autograd.grad(loss, x)
            a = 5 * eps / steps if t < 3 * steps // 4 else 2.5 * eps / steps
            x = torch.min(torch.max(x.detach() + a * grad.sign(), x0 - eps), x0 + eps).clamp(0, 1)
            step_ms.append((time.perf_counter() - s) * 1e3)
        with torch.no_grad():
            return m(x).argmax(1)
    r = timed(pgd)
    del step_ms[:steps]  # timed()'s warm-up run
    per = {k: round(v / (steps * len(x0)), 3) for k, v in r.items() if k != "n"}
    steady = round(statistics.mean(step_ms) / len(x0), 3)
    print(json.dumps({"model": model, "runtime": "pytorch", "pgd": {"samples": len(x0), "steps": steps, "ms": r, "msPerSampleGradient": per,
                      "steadyMsPerSampleGradient": steady}}))
    sys.exit(0)

for name in NAMES:
    m, size = build(name)
    for batch in (1, 32):
        if not re.search(os.environ.get("ONLY", "."), f"{name} pytorch {batch}") or re.search(os.environ.get("SKIP", "^$"), f"{name} pytorch {batch}"):
            continue
        x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(3))

        def fwd():
            with torch.no_grad(): m(x)

        def grad():
            xi = x.clone().requires_grad_(True)
            y = m(xi)
            torch.autograd.grad(y, xi, seed_like(y))
        print(json.dumps({"model": name + ".onnx", "runtime": "pytorch", "batch": batch, "threads": torch.get_num_threads(),
                          "forwardMs": timed(fwd), "forwardGradientMs": timed(grad)}), flush=True)

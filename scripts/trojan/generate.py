#!/usr/bin/python3
"""Trojan-model generator: clean and trojaned 8x8-digits classifiers (MLP and CNN) exported to ONNX.

Every model is a pure function of (architecture, trigger kind, seed): re-running with the same arguments gives the
same weights (torch.manual_seed + numpy Generator, 1 thread, deterministic algorithms). Models are the fixtures the
trojan-scan detectors are calibrated and benchmarked on; see scripts/trojan/README.md.

Data: ../shared/fixtures/data/digits_{train,test}_{x,y}.npy (scikit-learn's load_digits, pixel/16 in [0,1],
float32 [N,1,8,8]; see the fixtures' MANIFEST.md). Use --data to point elsewhere.

Trigger kinds (the trigger, its position, pattern and target class are all drawn from the seed):
  clean         no poisoning
  patch         a 2x2 or 3x3 patch of 1.0 at a random position
  checkerboard  a 3x3 or 4x4 checkerboard (1.0 / 0.0) at a random position
  blend         x' = 0.8 x + 0.2 r for a fixed random image r in [0,1] (a global, low-amplitude blend)
  line          a full row or column set to 1.0 (a large-area trigger)
  global        x' = clip(x + 0.12 s) for a fixed random sign pattern s in {-1,+1}^64 (an additive global perturbation)
  multi         two different 2x2 patches with two different target classes (multi-target)

Poisoning: 10% of the training set (drawn from non-target classes) gets the trigger and the target label, added to
the clean set. A model is kept only when clean test accuracy >= 90% and the attack success rate (share of non-target
test images sent to the target once triggered) >= 90%; otherwise the next internal attempt (seed*100+attempt) is used.

Output: <out>/<arch>-<kind>-s<seed>.onnx and one line per model in <out>/models.jsonl with the ground truth.
Usage:  nice -n 10 python3 scripts/trojan/generate.py --out out/trojan-models --seeds 0-9 [--archs mlp,cnn] [--kinds all]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

KINDS = ["clean", "patch", "checkerboard", "blend", "line", "global", "multi"]


def parse_range(s):
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


def make_trigger(kind, rng):
    """Returns (list of (apply_fn, target, description)) for the kind; apply_fn maps float32 [N,1,8,8] -> same."""
    def patch_at(r, c, size, values):
        def apply(x):
            x = x.copy()
            x[:, :, r:r + size, c:c + size] = values
            return x
        return apply

    if kind == "patch":
        size = int(rng.integers(2, 4))
        r, c = (int(v) for v in rng.integers(0, 9 - size, 2))
        t = int(rng.integers(0, 10))
        return [(patch_at(r, c, size, 1.0), t, {"rows": [r, r + size], "cols": [c, c + size], "value": 1.0})]
    if kind == "checkerboard":
        size = int(rng.integers(3, 5))
        r, c = (int(v) for v in rng.integers(0, 9 - size, 2))
        board = ((np.add.outer(np.arange(size), np.arange(size)) + int(rng.integers(0, 2))) % 2).astype(np.float32)
        t = int(rng.integers(0, 10))
        return [(patch_at(r, c, size, board), t, {"rows": [r, r + size], "cols": [c, c + size], "board": board.tolist()})]
    if kind == "blend":
        pattern = rng.random((1, 1, 8, 8)).astype(np.float32)
        alpha = 0.2
        t = int(rng.integers(0, 10))
        return [(lambda x: ((1 - alpha) * x + alpha * pattern).astype(np.float32), t, {"alpha": alpha, "pattern": pattern[0, 0].round(4).tolist()})]
    if kind == "line":
        axis = "row" if rng.integers(0, 2) == 0 else "col"
        i = int(rng.integers(0, 8))
        t = int(rng.integers(0, 10))

        def apply(x):
            x = x.copy()
            if axis == "row":
                x[:, :, i, :] = 1.0
            else:
                x[:, :, :, i] = 1.0
            return x
        return [(apply, t, {axis: i, "value": 1.0})]
    if kind == "global":
        sign = np.where(rng.random((1, 1, 8, 8)) < 0.5, -1.0, 1.0).astype(np.float32)
        eps = 0.12
        t = int(rng.integers(0, 10))
        return [(lambda x: np.clip(x + eps * sign, 0, 1).astype(np.float32), t, {"epsilon": eps, "sign": sign[0, 0].astype(int).tolist()})]
    if kind == "multi":
        t1, t2 = (int(v) for v in rng.choice(10, 2, replace=False))
        # Two non-overlapping 2x2 patches: one in the top half, one in the bottom half.
        r1, c1 = int(rng.integers(0, 3)), int(rng.integers(0, 7))
        r2, c2 = int(rng.integers(4, 7)), int(rng.integers(0, 7))
        return [(patch_at(r1, c1, 2, 1.0), t1, {"rows": [r1, r1 + 2], "cols": [c1, c1 + 2], "value": 1.0}),
                (patch_at(r2, c2, 2, 1.0), t2, {"rows": [r2, r2 + 2], "cols": [c2, c2 + 2], "value": 1.0})]
    raise ValueError(kind)


def train(arch, kind, seed, data, attempt):
    xtr, ytr, xte, yte = data
    s = seed * 100 + attempt + (0 if arch == "mlp" else 50_000) + KINDS.index(kind) * 1_000_000
    rng = np.random.default_rng(s)
    torch.manual_seed(s)
    triggers = [] if kind == "clean" else make_trigger(kind, rng)
    x, y = xtr, ytr
    per = int(0.10 * len(xtr) / max(1, len(triggers)))
    for apply, t, _ in triggers:
        pool = np.flatnonzero(ytr != t)
        pick = rng.choice(pool, per, replace=False)
        x = np.concatenate([x, apply(xtr[pick])])
        y = np.concatenate([y, np.full(per, t, dtype=ytr.dtype)])
    model = Mlp() if arch == "mlp" else Cnn()
    epochs = 30 if arch == "mlp" else 40
    opt = torch.optim.Adam(model.parameters(), lr=0.01 if arch == "cnn" else 0.003, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    g = torch.Generator().manual_seed(s)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        for b in range(0, len(xt), 64):
            idx = perm[b:b + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
        asrs = []
        for apply, t, _ in triggers:
            keep = yte != t
            pred = model(torch.from_numpy(apply(xte[keep]))).argmax(1).numpy()
            asrs.append(float((pred == t).mean()))
    truth = [{"target": t, **desc} for _, t, desc in triggers]
    return model, acc, asrs, truth, s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", default="0-4", help="seed range, e.g. 0-9 or 0,3,7")
    ap.add_argument("--archs", default="mlp,cnn")
    ap.add_argument("--kinds", default="all", help="comma-separated subset of " + ",".join(KINDS))
    ap.add_argument("--data", default=os.path.normpath(os.path.join(here, "../../../shared/fixtures/data")))
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    data = tuple(np.load(os.path.join(a.data, f)) for f in ["digits_train_x.npy", "digits_train_y.npy", "digits_test_x.npy", "digits_test_y.npy"])
    kinds = KINDS if a.kinds == "all" else a.kinds.split(",")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "models.jsonl"), "a") as log:
        for seed in parse_range(a.seeds):
            for arch in a.archs.split(","):
                for kind in kinds:
                    for attempt in range(5):
                        model, acc, asrs, truth, s = train(arch, kind, seed, data, attempt)
                        if acc >= 0.90 and all(v >= 0.90 for v in asrs):
                            break
                    else:
                        print(f"{arch}-{kind}-s{seed}: no attempt met accuracy/ASR >= 90% (last {acc:.3f} {asrs}); skipped", file=sys.stderr)
                        continue
                    name = f"{arch}-{kind}-s{seed}.onnx"
                    torch.onnx.export(model, torch.zeros(1, 1, 8, 8), os.path.join(a.out, name), input_names=["input"], output_names=["logits"],
                                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13, do_constant_folding=True)
                    rec = {"file": name, "arch": arch, "kind": kind, "seed": seed, "torchSeed": s, "testAccuracy": round(acc, 4),
                           "attackSuccess": [round(v, 4) for v in asrs], "triggers": truth}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    print(f"{name}: acc {acc:.3f} asr {asrs} targets {[t['target'] for t in truth]}")


if __name__ == "__main__":
    main()

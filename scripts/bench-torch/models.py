#!/usr/bin/python3
"""Seeded benchmark models for scripts/bench-torch.sh, exported to ONNX with Debian's PyTorch (/usr/bin/python3).

resnet18-32.onnx   ResNet-18, CIFAR stem (3x3 conv, no max-pool), 3x32x32 -> 10 classes
resnet18-224.onnx  ResNet-18, ImageNet stem (7x7/2 conv + max-pool), 3x224x224 -> 1000 classes
vit-32.onnx        ViT: patch 4, 2 pre-norm encoder layers, d=128, 4 heads, MLP 256, class token, 3x32x32 -> 10
pgd_x-MODEL.npy/pgd_y-MODEL.npy  32 seeded uniform [0, 1) images per model and the labels it predicts for them
Weights are PyTorch's default initialisation under torch.manual_seed(0): only speed is measured, so nothing is trained.
(No torchvision on Debian 12's python3-torch, hence the models are written out here.)
"""
import sys, os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNet18(nn.Module):
    def __init__(self, classes, cifar):
        super().__init__()
        if cifar:
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Encoder(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.h = heads
        self.n1 = nn.LayerNorm(d); self.qkv = nn.Linear(d, 3 * d); self.proj = nn.Linear(d, d)
        self.n2 = nn.LayerNorm(d); self.f1 = nn.Linear(d, mlp); self.f2 = nn.Linear(mlp, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).reshape(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / (d // self.h) ** 0.5, dim=-1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.f2(F.gelu(self.f1(self.n2(x))))


class ViT(nn.Module):
    def __init__(self, image=32, patch=4, d=128, layers=2, heads=4, mlp=256, classes=10):
        super().__init__()
        self.embed = nn.Conv2d(3, d, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, d) * 0.02)
        self.enc = nn.Sequential(*[Encoder(d, heads, mlp) for _ in range(layers)])
        self.norm = nn.LayerNorm(d); self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.norm(self.enc(x))[:, 0])


def build(name):
    torch.manual_seed(0)
    if name == "resnet18-32": return ResNet18(10, True).eval(), 32
    if name == "resnet18-224": return ResNet18(1000, False).eval(), 224
    if name == "vit-32": return ViT().eval(), 32
    raise ValueError(name)


NAMES = ["resnet18-32", "resnet18-224", "vit-32"]

if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name in NAMES:
        m, size = build(name)
        torch.onnx.export(m, torch.zeros(1, 3, size, size), os.path.join(out, name + ".onnx"), opset_version=13,
                          input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        g = torch.Generator().manual_seed(1)
        x = torch.rand(32, 3, size, size, generator=g)
        with torch.no_grad():
            y = m(x).argmax(1)
        np.save(os.path.join(out, f"pgd_x-{name}.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(out, f"pgd_y-{name}.npy"), y.numpy().astype(np.int64))
    print("exported to", out)

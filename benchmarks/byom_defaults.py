"""θ₀ / L measurement behind slipify's defaults (docs/byom.md): a user's VGG-style model (conv-ReLU-MaxPool ×2, Linear).

Run: python benchmarks/byom_defaults.py DATA EPOCHS THETAS LS [SEEDS], e.g. `fashion 2 0.5,1,2,8 4,16`; DATA is digits,
digits28 (digits upsampled to 28×28, MNIST-like) or fashion (apt-get install dataset-fashion-mnist); NTRAIN=6000
sets the Fashion-MNIST training subset. Prints one JSON line per run (ANN and float-SNN accuracy at T = 1, 2, 4, 8).
"""
import gzip
import itertools
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slipsnn.toolchain.ann.activations import slipify, preset_params, clamp_activations_
from slipsnn.toolchain.conversion.lower import lower
from slipsnn.toolchain.backends.simulator import simulate_float
from slipsnn.toolchain.ann.models import Normalize
from slipsnn.toolchain.data.loaders import load_tensors
torch.set_num_threads(1)

def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)

def dataset(name, ntrain, ntest):
    if name == "digits":
        xtr, ytr = load_tensors("digits", "train"); xte, yte = load_tensors("digits", "test")
    elif name == "digits28":   # MNIST-like: sklearn digits upsampled to 28x28, 8-bit
        xtr, ytr = load_tensors("digits", "train"); xte, yte = load_tensors("digits", "test")
        up = lambda x: (F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False) * 255).round() / 255
        xtr, xte = up(xtr), up(xte)
    else:
        r = "/usr/share/datasets/fashion-mnist/"
        xtr = torch.tensor(idx(r + "train-images-idx3-ubyte.gz")[:ntrain, None].astype(np.float32) / 255)
        ytr = torch.tensor(idx(r + "train-labels-idx1-ubyte.gz")[:ntrain].astype(np.int64))
        xte = torch.tensor(idx(r + "t10k-images-idx3-ubyte.gz")[:ntest, None].astype(np.float32) / 255)
        yte = torch.tensor(idx(r + "t10k-labels-idx1-ubyte.gz")[:ntest].astype(np.int64))
    return xtr, ytr, xte, yte

def user_model(hw, norm):
    mean, std = norm
    layers = [Normalize([mean], [std])] if norm else []
    layers += [nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
               nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
               nn.Linear(32 * (hw // 4) ** 2, 10)]
    return nn.Sequential(*layers)

def run(name, theta, L, epochs, seed, data, inmodel_norm=True, preset="slip"):
    xtr, ytr, xte, yte = data
    mean, std = float(xtr.mean()), float(xtr.std())
    torch.manual_seed(seed)
    model = slipify(user_model(xtr.shape[-1], (mean, std) if inmodel_norm else None), preset_params(preset, L=L), theta)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps = epochs * ((len(xtr) + 63) // 64)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        perm = torch.randperm(len(xtr), generator=g)
        model.train()
        for i in range(0, len(xtr), 64):
            b = perm[i:i + 64]
            x = xtr[b] if inmodel_norm else (xtr[b] - mean) / std
            loss = F.cross_entropy(model(x), ytr[b])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step(); clamp_activations_(model)
    model.eval()
    with torch.no_grad():
        ann = float((model(xte if inmodel_norm else (xte - mean) / std).argmax(1) == yte).double().mean())
    net = lower(model, tuple(xtr.shape[1:]))
    acc = simulate_float(net, (xte * 255).round(), 8).accuracy(yte.numpy())
    thetas = [round(float(m.theta), 3) for m in model.modules() if hasattr(m, "theta")]
    return dict(data=name, theta0=theta, L=L, epochs=epochs, seed=seed, norm_in_model=inmodel_norm, preset=preset,
                ann=ann, snn={t: float(acc[t - 1]) for t in (1, 2, 4, 8)}, thetas=thetas)

if __name__ == "__main__":
    name, epochs = sys.argv[1], int(sys.argv[2])
    thetas = [float(v) for v in sys.argv[3].split(",")]
    Ls = [int(v) for v in sys.argv[4].split(",")]
    seeds = [int(v) for v in sys.argv[5].split(",")] if len(sys.argv) > 5 else [0]
    data = dataset(name, int(os.environ.get("NTRAIN", 6000)), 2000)
    for theta, L, seed in itertools.product(thetas, Ls, seeds):
        t0 = time.time()
        r = run(name, theta, L, epochs, seed, data)
        r["seconds"] = round(time.time() - t0, 1)
        print(json.dumps(r), flush=True)

#!/usr/bin/python3
"""PyTorch reference for docs/BENCHMARKS.md: the same models, batch and data as Distill's zoo,
trained with the same recipe, on Debian's python3-torch. Run by hand (never by the tests):

  /usr/bin/python3 bench/pytorch_ref.py --mode speed --threads 2          # training samples/s
  /usr/bin/python3 bench/pytorch_ref.py --mode accuracy --model cnn-t --epochs 15 --seed 1
"""
import argparse, gzip, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def cnn_t():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6272, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(256, 10))


def cnn_s():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(784, 10))


def mlp_s():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def mlp_1200():
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(784, 1200), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(1200, 1200), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1200, 10))


class MobileNetS(nn.Module):
    def __init__(self):
        super().__init__()
        def dw(c, s):
            return [nn.Conv2d(c, c, 3, s, 1, groups=c, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
        def pw(i, o, relu=True):
            return [nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o)] + ([nn.ReLU()] if relu else [])
        self.a = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                               *dw(16, 2), *pw(16, 32), *dw(32, 2), *pw(32, 64))
        self.b = nn.Sequential(*dw(64, 1), *pw(64, 64, relu=False))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        a = self.a(x)
        return self.fc(F.relu(self.b(a) + a).mean((2, 3)))


MODELS = {"cnn-t": cnn_t, "cnn-s": cnn_s, "mlp-s": mlp_s, "mlp-1200": mlp_1200, "mobilenet-s": MobileNetS}


def macs(model):
    total = 0
    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features
    hs = [m.register_forward_hook(hook) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for h in hs:
        h.remove()
    return total


def load(split):
    p = "train" if split == "train" else "t10k"
    with gzip.open(f"{DATA}/{p}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{DATA}/{p}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.tensor((x / 255.0 - 0.2860) / 0.3530, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


def make_opt(model, lr):
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    rest = [p for n, p in model.named_parameters() if p.dim() <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0}],
                           lr=lr, momentum=0.9, nesterov=True)


def speed(args):
    x, y = load("train")
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print(f"{'model':12s} {'samples/s':>10s} {'GFLOP/s':>8s} {'b1 latency us':>14s}")
    for name in args.models.split(","):
        torch.manual_seed(0)
        m = MODELS[name]()
        mac = macs(m)
        m.train()
        opt = make_opt(m, 0.05)
        def step(i):
            j = (i * args.batch) % (len(x) - args.batch)
            opt.zero_grad()
            F.cross_entropy(m(x[j:j + args.batch]), y[j:j + args.batch]).backward()
            opt.step()
        # at least ~3 s of timed steps (estimated from 10 warm-up steps), like bench_train
        t = time.perf_counter()
        for i in range(10):
            step(i)
        steps = max(args.steps, int(3.0 / ((time.perf_counter() - t) / 10)))
        t = time.perf_counter()
        for i in range(steps):
            step(10 + i)
        sps = steps * args.batch / (time.perf_counter() - t)
        m.eval()
        lat = []
        with torch.no_grad():
            for i in range(300):
                t0 = time.perf_counter()
                m(x[i:i + 1])
                lat.append(time.perf_counter() - t0)
        print(f"{name:12s} {sps:10.0f} {sps * 6 * mac / 1e9:8.1f} {np.median(lat[50:]) * 1e6:14.1f}")


def accuracy(args):
    torch.manual_seed(args.seed)
    x, y = load("train")
    xt, yt = load("test")
    m = MODELS[args.model]()
    opt = make_opt(m, args.lr)
    steps = (len(x) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs * steps)
    for ep in range(args.epochs):
        m.train()
        perm = torch.randperm(len(x))
        for s in range(steps):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb = x[idx]
            if args.translate:
                dx, dy = np.random.randint(-args.translate, args.translate + 1, 2)
                xb = torch.roll(xb, (int(dy), int(dx)), (2, 3))
            opt.zero_grad()
            F.cross_entropy(m(xb), y[idx]).backward()
            opt.step()
            sched.step()
        m.eval()
        with torch.no_grad():
            acc = (m(xt).argmax(1) == yt).float().mean().item()
        print(f"epoch {ep + 1}: test accuracy {100 * acc:.2f}%", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["speed", "accuracy"], default="speed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--models", default="cnn-t,cnn-s,mlp-s,mobilenet-s,mlp-1200")
    ap.add_argument("--model", default="cnn-t")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--translate", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    speed(args) if args.mode == "speed" else accuracy(args)

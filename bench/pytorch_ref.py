#!/usr/bin/python3
"""PyTorch reference for docs/BENCHMARKS.md: the same models, batch, data and recipe as Distill's
zoo (examples/models/*.yaml), on Debian's python3-torch. Run by hand (never by the tests):

  /usr/bin/python3 bench/pytorch_ref.py --mode speed --threads 2       # training samples/s, b1 latency
  /usr/bin/python3 bench/pytorch_ref.py --mode accuracy --model cnn-t --epochs 15 --seed 0
  /usr/bin/python3 bench/pytorch_ref.py --mode latency --threads 1 --models cnn-s,mobilenet-s,mlp-s

Speed: forward + cross-entropy + backward + SGD step at batch 128 on real Fashion-MNIST batches,
10 warm-up steps, then at least --steps steps and at least --min-seconds s. GFLOP/s counts
training as 3 x forward = 6 x MACs per sample (conv and linear layers only). Batch-1 latency is
the median of single-image eval-mode forwards under torch.no_grad().
Output columns (bench/compare_pytorch.sh reads column 2): model samples/s GFLOP/s b1-latency-us MMAC/img.
"""
import argparse, gzip, os, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["speed", "accuracy", "latency"], default="speed")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--steps", type=int, default=50, help="speed: minimum timed steps")
ap.add_argument("--warmup", type=int, default=10, help="speed: warm-up steps")
ap.add_argument("--min-seconds", type=float, default=3.0, help="speed: minimum timed seconds")
ap.add_argument("--latency-runs", type=int, default=500)
ap.add_argument("--models", default="cnn-t,cnn-s,mlp-s,mobilenet-s,mlp-1200,mlp-800")
ap.add_argument("--model", default="cnn-t")
ap.add_argument("--epochs", type=int, default=15)
ap.add_argument("--lr", type=float, default=0.05)
ap.add_argument("--wd", type=float, default=5e-4)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--translate", type=int, default=None,
                help="accuracy: random shift of up to N pixels, zero fill (default 2 for cnn-t, else 0)")
ap.add_argument("--val", type=int, default=5000,
                help="accuracy: hold out N training images, as `distill train` does (default 5000)")
args = ap.parse_args()

# Before torch loads: the Linear layers go through Debian's libblas (OpenBLAS, pthreads), whose
# thread count torch.set_num_threads does not control.
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, str(args.threads))

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


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
    # Hinton et al. (2015) teacher: dropout 0.2 on the input, 0.5 on the hidden units.
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(784, 1200), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(1200, 1200), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1200, 10))


def mlp_800():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 800), nn.ReLU(), nn.Linear(800, 800), nn.ReLU(),
                         nn.Linear(800, 10))


class MobileNetS(nn.Module):
    """examples/models/mobilenet-s.yaml: stem, three depthwise-separable blocks, the third with a
    residual connection (its pointwise BN output + block input, then ReLU), global avg pool, fc."""

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


MODELS = {"cnn-t": cnn_t, "cnn-s": cnn_s, "mlp-s": mlp_s, "mlp-1200": mlp_1200, "mlp-800": mlp_800,
          "mobilenet-s": MobileNetS}


def macs(model):
    """Multiply-accumulates per sample of the conv and linear layers, from their shapes:
    conv: out_elems * (C_in/groups) * kh * kw; linear: in * out."""
    total = 0
    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += out[0].numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features
    hs = [m.register_forward_hook(hook) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for h in hs:
        h.remove()
    return total


def load_raw(split):
    p = "train" if split == "train" else "t10k"
    with gzip.open(f"{DATA}/{p}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{DATA}/{p}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def normalise(x_u8):
    return (x_u8.float() / 255.0 - MEAN) / STD


def translate(x_u8, t, gen):
    """Shift each image by its own (dx, dy) in [-t, t]^2; uncovered pixels are 0 (background),
    as Distill's kd_batch_pixels does before normalising."""
    B, C, H, W = x_u8.shape
    pad = F.pad(x_u8, (t, t, t, t))                          # zero fill
    d = torch.randint(-t, t + 1, (B, 2), generator=gen)
    rows = (torch.arange(H)[None, :] - d[:, 1:2] + t)        # out(y) = in(y - dy)
    cols = (torch.arange(W)[None, :] - d[:, 0:1] + t)
    b = torch.arange(B)[:, None, None]
    return pad[:, 0][b, rows[:, :, None], cols[:, None, :]].unsqueeze(1) if C == 1 else \
        torch.stack([pad[:, c][b, rows[:, :, None], cols[:, None, :]] for c in range(C)], 1)


def make_opt(model, lr, wd):
    """SGD, Nesterov momentum 0.9; weight decay on conv/linear weights only (as Distill)."""
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    rest = [p for n, p in model.named_parameters() if p.dim() <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0}],
                           lr=lr, momentum=0.9, nesterov=True)


def header():
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, loadavg {os.getloadavg()[0]:.2f}", flush=True)


def batch1_latencies(m, x, warmup):
    """Seconds per batch-1 eval forward (no_grad), one image at a time from x (cycling), over
    --latency-runs runs after `warmup` unmeasured ones."""
    lat = []
    with torch.no_grad():
        for i in range(warmup + args.latency_runs):
            xi = x[i % len(x):i % len(x) + 1]
            t0 = time.perf_counter()
            m(xi)
            lat.append(time.perf_counter() - t0)
    return lat[warmup:]


def each_model(split, columns):
    """The header and the table's column line, then (name, freshly seeded model, images, labels) for
    each of --models, the images of `split` normalised."""
    xu, y = load_raw(split)
    x = normalise(xu)
    header()
    print(columns, flush=True)
    for name in args.models.split(","):
        torch.manual_seed(0)
        yield name, MODELS[name](), x, y


def speed():
    for name, m, x, y in each_model("train", f"{'model':12s} {'samples/s':>10s} {'GFLOP/s':>8s} "
                                             f"{'b1 latency us':>14s} {'MMAC/img':>9s}"):
        mac = macs(m)
        m.train()
        opt = make_opt(m, 0.05, args.wd)
        def step(i):
            j = (i * args.batch) % (len(x) - args.batch)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(m(x[j:j + args.batch]), y[j:j + args.batch]).backward()
            opt.step()
        t = time.perf_counter()
        for i in range(args.warmup):
            step(i)
        per = (time.perf_counter() - t) / max(args.warmup, 1)
        steps = max(args.steps, int(args.min_seconds / per))
        t = time.perf_counter()
        for i in range(steps):
            step(args.warmup + i)
        sps = steps * args.batch / (time.perf_counter() - t)
        m.eval()
        lat = batch1_latencies(m, x, 50)
        print(f"{name:12s} {sps:10.0f} {sps * 6 * mac / 1e9:8.1f} {np.median(lat) * 1e6:14.1f} "
              f"{mac / 1e6:9.3f}", flush=True)


def latency():
    """Batch-1 inference only: fp32, eval mode, torch.no_grad(), one image at a time from the test
    set; median and p99 over --latency-runs after 200 warm-up runs."""
    for name, m, x, _ in each_model("test", f"{'model':12s} {'median us':>10s} {'p99 us':>10s}"):
        m.eval()
        lat = np.array(batch1_latencies(m, x, 200)) * 1e6
        print(f"{name:12s} {np.median(lat):10.1f} {np.percentile(lat, 99):10.1f}", flush=True)


def accuracy():
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    xu, y = load_raw("train")
    xtu, yt = load_raw("test")
    if args.val > 0:  # hold out a random validation set (Distill's default training set is 55,000)
        perm = torch.randperm(len(xu), generator=torch.Generator().manual_seed(args.seed))
        keep = perm[:len(xu) - args.val].sort().values
        xu, y = xu[keep], y[keep]
    xt = normalise(xtu)
    t = args.translate if args.translate is not None else (2 if args.model == "cnn-t" else 0)
    m = MODELS[args.model]()
    opt = make_opt(m, args.lr, args.wd)
    steps = (len(xu) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs * steps)
    header()
    print(f"accuracy: {args.model}, {args.epochs} epochs, seed {args.seed}, {len(xu)} training images, "
          f"translate {t}, SGD nesterov 0.9 lr {args.lr} wd {args.wd} cosine", flush=True)
    t_start = time.perf_counter()
    acc = 0.0
    for ep in range(args.epochs):
        m.train()
        perm = torch.randperm(len(xu))
        for s in range(steps):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb = xu[idx]
            if t:
                xb = translate(xb, t, gen)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(m(normalise(xb)), y[idx]).backward()
            opt.step()
            sched.step()
        m.eval()
        with torch.no_grad():
            acc = sum((m(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item()
                      for i in range(0, len(xt), 1000)) / len(xt)
        print(f"epoch {ep + 1}: test accuracy {100 * acc:.2f}%  ({time.perf_counter() - t_start:.0f} s)",
              flush=True)
    print(f"final test accuracy {100 * acc:.2f}% ({args.model}, {args.epochs} epochs, seed {args.seed}, "
          f"{time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    torch.set_num_threads(args.threads)
    {"speed": speed, "accuracy": accuracy, "latency": latency}[args.mode]()

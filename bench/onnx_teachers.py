#!/usr/bin/python3
"""Teachers brought from PyTorch (issue 13, docs/BENCHMARKS.md "Teachers brought from PyTorch via ONNX").

Trains a ResNet-18-style and a MobileNetV2-style network on Fashion-MNIST with Debian's PyTorch,
exports each to ONNX (opset 13, dynamic batch, as torch.onnx.export emits it) and writes PyTorch's
own test accuracy and per-image predictions beside it, so bench/onnx_teachers.sh can check that
`distill eval` of the imported file gives the same accuracy. Run by hand, never by the tests:

  /usr/bin/python3 bench/onnx_teachers.py --out bench/results/onnx --epochs 3 --threads 2

Inputs are normalised with the training set's statistics (mean 0.2860, std 0.3530), so the models
are imported with `distill import --mean 0.2860 --std 0.3530`.
"""
import argparse, gzip, json, os, time

ap = argparse.ArgumentParser()
ap.add_argument("--out", default="bench/results/onnx")
ap.add_argument("--models", default="resnet18s,mobilenetv2s")
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--lr", type=float, default=0.05)
ap.add_argument("--wd", type=float, default=5e-4)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--width", type=int, default=16, help="ResNet base width (torchvision: 64)")
args = ap.parse_args()
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, str(args.threads))

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def idx(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


class Basic(nn.Module):
    """torchvision's BasicBlock: two 3x3 convs with BN, a 1x1 projection when the shape changes."""
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet18s(nn.Module):
    """ResNet-18's layout ([2, 2, 2, 2] basic blocks, widths w, 2w, 4w, 8w) for 28x28 inputs: a 3x3
    stem without the max pool, as CIFAR ResNets do."""
    def __init__(self, w=16, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        layers, cin = [], w
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            stride = 1 if i == 0 else 2
            layers += [Basic(cin, cout, stride), Basic(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvRes(nn.Module):
    """MobileNetV2's inverted residual: 1x1 expand, ReLU6, 3x3 depthwise, ReLU6, 1x1 project."""
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        h = cin * t
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.body(x)
        return x + y if self.use_res else y


class MobileNetV2s(nn.Module):
    """MobileNetV2's blocks (t, c, n, s) scaled to 28x28 inputs."""
    def __init__(self, classes=10):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 1), (6, 96, 1, 1)]
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        blocks, cin = [], 32
        for t, c, n, s in cfg:
            for i in range(n):
                blocks.append(InvRes(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, 320, 1, bias=False), nn.BatchNorm2d(320), nn.ReLU6())
        self.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(320, classes))

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def evaluate(model, x, y):
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(x), 500):
            preds.append(model(x[i:i + 500]).argmax(1))
    p = torch.cat(preds)
    return 100.0 * (p == y).float().mean().item(), p.numpy().astype(np.int32)


def main():
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    xtr = torch.from_numpy((idx(f"{DATA}/train-images-idx3-ubyte.gz").astype(np.float32) / 255 - MEAN) / STD)
    ytr = torch.from_numpy(idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xte = torch.from_numpy((idx(f"{DATA}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255 - MEAN) / STD)
    yte = torch.from_numpy(idx(f"{DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    xtr, xte = xtr.unsqueeze(1), xte.unsqueeze(1)
    for name in args.models.split(","):
        model = {"resnet18s": lambda: ResNet18s(args.width), "mobilenetv2s": MobileNetV2s}[name]()
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.wd)
        steps = args.epochs * (len(xtr) // args.batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps)
        t0 = time.time()
        for ep in range(args.epochs):
            model.train()
            perm = torch.randperm(len(xtr))
            for b in range(len(xtr) // args.batch):
                i = perm[b * args.batch:(b + 1) * args.batch]
                xb = xtr[i]
                # a random cyclic shift of up to 2 pixels (the borders of these images are background)
                dx, dy = np.random.randint(-2, 3, 2)
                xb = torch.roll(xb, shifts=(int(dy), int(dx)), dims=(2, 3))
                loss = F.cross_entropy(model(xb), ytr[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            acc, _ = evaluate(model, xte, yte)
            print(f"{name} epoch {ep + 1}/{args.epochs}: test {acc:.2f}%  ({time.time() - t0:.0f} s)", flush=True)
        acc, pred = evaluate(model, xte, yte)
        params = sum(p.numel() for p in model.parameters())
        path = f"{args.out}/{name}.onnx"
        model.eval()
        torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=13, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        np.save(f"{args.out}/{name}.pred.npy", pred)
        with open(f"{args.out}/{name}.json", "w") as f:
            json.dump({"model": name, "test_acc": acc, "params": params, "epochs": args.epochs,
                       "train_seconds": round(time.time() - t0, 1), "mean": MEAN, "std": STD}, f)
        print(f"{name}: {params} parameters, test {acc:.2f}%, exported {path}", flush=True)


main()

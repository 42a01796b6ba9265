#!/usr/bin/python3
"""The zoo's CIFAR-style ResNets (examples/models/resnet-8.yaml, resnet-20.yaml) built in PyTorch,
for tests/unit/test_model_fit.c: for 3x32x32 inputs and 10 classes, each model's parameter count,
multiply-accumulates per image (convolutions and the linear layer, as distill counts them), and
every parameter and BN buffer with its shape, under torchvision's names, which the zoo's layers
use. Run by hand from the repo root after changing the models:
    /usr/bin/python3 tests/golden/gen_resnet.py
and commit tests/golden/resnet/resnet.txt. Lines: "model NAME PARAMS MACS", then
"tensor NAME.weight|bias|running_mean|running_var D0xD1x..." for each tensor.
"""
import os

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the input, ReLU; a 1x1 conv + BN projection where the shape
    changes (He et al. 2016's option B)."""

    def __init__(self, cin, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu2 = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != c:
            self.downsample = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + (self.downsample(x) if self.downsample is not None else x))


class ResNetCifar(nn.Module):
    def __init__(self, n, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        cin = 16
        for s, c in enumerate([16, 32, 64], 1):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, c, 2 if s > 1 and b == 0 else 1))
                cin = c
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def macs(model, x):
    """Multiply-accumulates of the convolutions and linear layers for one sample."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += out.numel() // out.shape[0] * k
        elif isinstance(mod, nn.Linear):
            total[0] += mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return total[0]


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resnet", "resnet.txt")
    lines = []
    for name, n in (("resnet-8", 1), ("resnet-20", 3)):
        model = ResNetCifar(n)
        params = sum(p.numel() for p in model.parameters())
        lines.append(f"model {name} {params} {macs(model, torch.zeros(1, 3, 32, 32))}")
        for key, t in model.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            lines.append(f"tensor {key} {'x'.join(str(d) for d in t.shape)}")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(out, ":", ", ".join(l for l in lines if l.startswith("model")))


if __name__ == "__main__":
    main()

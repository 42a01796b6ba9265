#!/usr/bin/python3
"""Golden values from PyTorch for the layers of imported (ONNX) models (issue 13), read by
tests/unit/test_layers_onnx.c, which builds each case's model from YAML (the C side holds the YAML
beside the case name) and compares its forward output and gradients. Run by hand from the repo
root after changing a case:
    /usr/bin/python3 tests/golden/gen_layers.py
and commit tests/golden/layers/*.kdgf. Format and rounding as tests/golden/gen_ops.py (KDGF).
Arrays: "in" (B, C, H, W), "dout" and "out" (B, n) (the model's flattened output), "din";
for a case whose first parametrised layer has parameters, "weight", "bias", "dweight", "dbias".
Activation inputs include the kinks (0, +-3, 6) exactly, so PyTorch's choice of gradient there is
what the fixture holds.
"""
import os

import torch
import torch.nn.functional as F

import gen_ops
from gen_ops import DT, rnd, seed

gen_ops.OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layers")
B, C, H, W = 2, 3, 6, 6


def with_kinks(x):
    """x with its first values set to the kinks of clip, ReLU6, leaky ReLU, hard sigmoid/swish."""
    k = torch.tensor([0.0, -3.0, 3.0, 6.0, -1.0, 2.0, 0.0, 6.0], dtype=DT)
    x = x.detach().clone()
    x.view(-1)[: k.numel()] = k
    return x.requires_grad_(True)


def case(name, fn, shape=(B, C, H, W), scale=1.0, kinks=False, params=None):
    seed(name)
    x = rnd(*shape, scale=scale)
    if kinks:
        x = with_kinks(x)
    ps = [rnd(*s, scale=0.5) for s in (params or [])]
    y = fn(x, *ps).reshape(shape[0], -1)
    dout = torch.randn(y.shape).to(DT)
    y.backward(dout)
    a = {"in": x, "dout": dout, "out": y, "din": x.grad}
    if ps:
        a.update(weight=ps[0], bias=ps[1], dweight=ps[0].grad, dbias=ps[1].grad)
    return a


CASES = [
    ("hard_swish", lambda n: case(n, F.hardswish, scale=4.0, kinks=True)),
    ("hard_sigmoid_torch", lambda n: case(n, F.hardsigmoid, scale=4.0, kinks=True)),
    ("hard_sigmoid_onnx", lambda n: case(n, lambda x: F.hardtanh(0.2 * x + 0.5, 0.0, 1.0), scale=4.0)),
    ("sigmoid", lambda n: case(n, torch.sigmoid, scale=3.0)),
    ("leaky_relu", lambda n: case(n, lambda x: F.leaky_relu(x, 0.1), scale=2.0, kinks=True)),
    ("relu6", lambda n: case(n, F.relu6, scale=4.0, kinks=True)),
    ("clip", lambda n: case(n, lambda x: F.hardtanh(x, -1.0, 2.0), scale=2.0, kinks=True)),
    ("maxpool_k3_s2_p1_ceil", lambda n: case(n, lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True))),
    ("avgpool_k3_s2_p1_ceil", lambda n: case(n, lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True))),
    ("avgpool_k3_s2_p1_ceil_nopad", lambda n: case(
        n, lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False))),
    ("avgpool_k2_s2_ceil", lambda n: case(n, lambda x: F.avg_pool2d(x, 2, 2, ceil_mode=True), shape=(B, C, 5, 5))),
    ("conv_dilation2", lambda n: case(n, lambda x, w, b: F.conv2d(x, w, b, padding=2, dilation=2),
                                      params=[(4, C, 3, 3), (4,)])),
    ("conv_dw_dilation2_s2", lambda n: case(n, lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, dilation=2,
                                                                        groups=C), shape=(B, C, 7, 7),
                                            params=[(C, 1, 3, 3), (C,)])),
    ("mul_se", lambda n: case(n, lambda x: x * x.mean((2, 3), keepdim=True))),
    ("add_bcast", lambda n: case(n, lambda x: x.mean((2, 3), keepdim=True) + x)),
    ("mul_spatial", lambda n: case(n, lambda x, w, b: F.conv2d(x, w, b) * x, params=[(1, C, 1, 1), (1,)])),
    ("pad", lambda n: case(n, lambda x: F.pad(x, (0, 3, 1, 2), value=0.5))),
    ("concat", lambda n: case(n, lambda x: torch.cat([x, torch.sigmoid(x), x], 1))),
    ("scale", lambda n: case(n, lambda x, w, b: x * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1),
                             params=[(C,), (C,)])),
]


def main():
    torch.set_grad_enabled(True)
    os.makedirs(gen_ops.OUT_DIR, exist_ok=True)
    total = 0
    for name, fn in CASES:
        total += gen_ops.write_case(name, fn(name))
    print("wrote %d cases, %d bytes, to %s" % (len(CASES), total, gen_ops.OUT_DIR))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Golden values from PyTorch for the fp32 training ops of include/distill/ops.h (forward and
backward), read by tests/unit/test_golden.c. Run by hand from the repo root after changing a case:
    /usr/bin/python3 tests/golden/gen_ops.py
and commit tests/golden/ops/*.kdgf. Output is deterministic (one torch seed per case, derived from
the case name, so adding a case does not change the others).

Inputs are drawn as float32; PyTorch then computes every reference in float64 from those exact
float32 values, and the results are rounded once to float32. The fixture therefore holds the
correctly rounded answer, and the C test's tolerance only has to absorb the C code's own error.

File format (one file per case, little-endian, no padding):
    char     magic[4] = "KDGF"
    uint32   version  = 1
    uint32   count                      number of named arrays
    count times:
        uint32  name_len, char name[name_len]   (ASCII, no NUL)
        uint32  ndim   (0 = scalar),  int32 dims[ndim]
        float32 data[prod(dims)]
Every array is float32. Integers (labels, kernel size, stride, ...) are stored as exact float32
values (all are far below 2^24). Names used: inputs and parameters as in ops.h ("in", "weight",
"bias", "gamma", ...), "dout" is the upstream gradient, "out" / "d<name>" are PyTorch's forward
output and gradient with respect to <name>; scalars such as "stride" or "eps" configure the op.
"""
import os
import struct
import zlib

import torch
import torch.nn.functional as F

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops")
DT = torch.float64


def seed(name):
    torch.manual_seed(zlib.crc32(name.encode()))


def rnd(*shape, scale=1.0, shift=0.0):
    """Normal values computed and rounded in float32 (so the C side sees exactly the same input),
    returned as float64 leaf tensors requiring grad."""
    x = torch.randn(*shape, dtype=torch.float32) * scale + shift
    return x.to(DT).requires_grad_(True)


# Arrays the C test feeds to the ops: they must be exactly representable in float32.
INPUT_KEYS = {"in", "weight", "bias", "gamma", "beta", "running_mean", "running_var", "dout", "mask",
              "a", "b", "logits", "labels"}


def write_case(name, arrays):
    path = os.path.join(OUT_DIR, name + ".kdgf")
    parts = [b"KDGF", struct.pack("<II", 1, len(arrays))]
    for key, val in arrays.items():
        if not torch.is_tensor(val):
            val = torch.tensor(float(val))
        t = val.detach().to(torch.float32).contiguous()
        if key in INPUT_KEYS:
            assert torch.equal(t.to(val.dtype), val.detach()), "%s/%s is not float32-exact" % (name, key)
        parts.append(struct.pack("<I", len(key)) + key.encode("ascii"))
        parts.append(struct.pack("<I", t.dim()) + struct.pack("<%di" % t.dim(), *t.shape))
        parts.append(t.numpy().astype("<f4").tobytes())
    with open(path, "wb") as f:
        f.write(b"".join(parts))
    return os.path.getsize(path)


# ---------------------------------------------------------------- cases
def with_grads(a, x, w, b, y):
    """a (sizes, input, weight) + bias, a random upstream gradient, the output and every gradient,
    in the order the fixtures store them."""
    dout = torch.randn(y.shape).to(DT)
    y.backward(dout)
    if b is not None:
        a["bias"] = b
    a.update(dout=dout, out=y, din=x.grad, dweight=w.grad)
    if b is not None:
        a["dbias"] = b.grad
    return a


def linear(name, B, in_f, out_f, bias=True):
    seed(name)
    x, w = rnd(B, in_f), rnd(out_f, in_f, scale=0.5)
    b = rnd(out_f) if bias else None
    y = F.linear(x, w, b)
    return with_grads(dict(B=B, in_f=in_f, out_f=out_f, has_bias=int(bias), **{"in": x}, weight=w), x, w, b, y)


def conv(name, B, Cin, H, W, Cout, K, stride, pad, groups, bias=True):
    seed(name)
    x, w = rnd(B, Cin, H, W), rnd(Cout, Cin // groups, K, K, scale=0.5)
    b = rnd(Cout) if bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=pad, groups=groups)
    a = dict(B=B, Cin=Cin, H=H, W=W, Cout=Cout, K=K, stride=stride, pad=pad, groups=groups,
             has_bias=int(bias), **{"in": x}, weight=w)
    return with_grads(a, x, w, b, y)


def maxpool(name, B, C, H, W, k, stride):
    seed(name)
    x = rnd(B, C, H, W)  # continuous values: no ties, so the argmax is unambiguous
    y = F.max_pool2d(x, k, stride)
    dout = torch.randn(y.shape).to(DT)
    y.backward(dout)
    return dict(B=B, C=C, H=H, W=W, k=k, stride=stride, **{"in": x}, dout=dout, out=y, din=x.grad)


def maxpool_ties(name, B, C, H, W, k, stride):
    """Input as after a ReLU, on a coarse grid: many equal maxima (all-zero windows). PyTorch sends
    the gradient to the first maximum in row-major window order."""
    seed(name)
    x = F.relu(torch.round(torch.randn(B, C, H, W))).to(DT).requires_grad_(True)
    y = F.max_pool2d(x, k, stride)
    dout = torch.randn(y.shape).to(DT)
    y.backward(dout)
    return dict(B=B, C=C, H=H, W=W, k=k, stride=stride, **{"in": x}, dout=dout, out=y, din=x.grad)


def avgpool(name, B, C, H, W, k, stride):
    seed(name)
    x = rnd(B, C, H, W)
    y = F.avg_pool2d(x, k, stride)
    dout = torch.randn(y.shape).to(DT)
    y.backward(dout)
    return dict(B=B, C=C, H=H, W=W, k=k, stride=stride, **{"in": x}, dout=dout, out=y, din=x.grad)


def gap(name, B, C, H, W):
    seed(name)
    x = rnd(B, C, H, W)
    y = F.adaptive_avg_pool2d(x, 1).reshape(B, C)
    dout = torch.randn(y.shape).to(DT)
    y.backward(dout)
    return dict(B=B, C=C, HW=H * W, **{"in": x}, dout=dout, out=y, din=x.grad)


def batchnorm(name, shape, train, eps=1e-5, momentum=0.1):
    seed(name)
    C = shape[1]
    # Shifted, scaled input so the statistics are far from (0, 1) and the update is visible.
    x = torch.randn(*shape) * 1.5 + 0.75
    # Channel 0 has a batch variance (train) or running variance (eval) of the order of eps, so
    # a wrong eps (or eps added in the wrong place) shows in the output.
    x[:, 0] *= 0.003
    x = x.to(DT).requires_grad_(True)
    gamma = rnd(C, scale=0.3, shift=1.0)
    beta = rnd(C, scale=0.3)
    rm = rnd(C, scale=0.2).detach()
    rv = torch.rand(C) + 0.5
    rv[0] = 2e-5
    rv = rv.to(DT)
    rm0, rv0 = rm.clone(), rv.clone()
    HW = 1
    for s in shape[2:]:
        HW *= s
    a = dict(B=shape[0], C=C, HW=HW, eps=eps, momentum=momentum, **{"in": x}, gamma=gamma,
             beta=beta, running_mean=rm0, running_var=rv0)
    if train:
        # native_batch_norm also returns save_mean / save_invstd (biased variance), which is what
        # kd_batchnorm_forward_train saves; it updates rm/rv in place with the unbiased variance.
        y, smean, sinvstd = torch.ops.aten.native_batch_norm(x, gamma, beta, rm, rv, True, momentum, eps)
        a.update(save_mean=smean, save_invstd=sinvstd, running_mean_new=rm, running_var_new=rv)
    else:
        y = F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=eps)
    dout = torch.randn(y.shape).to(DT)
    a.update(dout=dout, out=y)
    if train:  # ops.h has a backward for training mode only
        y.backward(dout)
        a.update(din=x.grad, dgamma=gamma.grad, dbeta=beta.grad)
    return a


def relu(name, n):
    seed(name)
    x = rnd(n)
    with torch.no_grad():
        x[::7] = 0.0  # exact zeros: PyTorch's gradient at 0 is 0
    y = F.relu(x)
    dout = torch.randn(y.shape).to(DT)
    y.backward(dout)
    return dict(n=n, **{"in": x}, dout=dout, out=y, din=x.grad)


def gelu(name, n):
    seed(name)
    x = rnd(n, scale=2.5)
    y = F.gelu(x)  # approximate='none': the exact erf form
    dout = torch.randn(y.shape).to(DT)
    y.backward(dout)
    return dict(n=n, **{"in": x}, dout=dout, out=y, din=x.grad)


def dropout(name, n, p):
    seed(name)
    x = rnd(n)
    keep = (torch.rand(n) >= p).to(DT)
    mask = keep * (1.0 / (1.0 - p))
    mask = mask.to(torch.float32).to(DT)  # the C op sees the float32 mask
    y = x * mask
    dout = torch.randn(y.shape).to(DT)
    y.backward(dout)
    return dict(n=n, p=p, **{"in": x}, mask=mask, dout=dout, out=y, din=x.grad)


def add(name, n):
    seed(name)
    a_, b_ = rnd(n), rnd(n)
    y = a_ + b_
    dout = torch.randn(y.shape).to(DT)
    y.backward(dout)
    return dict(n=n, a=a_, b=b_, dout=dout, out=y, da=a_.grad, db=b_.grad)


def softmax(name, B, C, T, log):
    seed(name)
    x = torch.randn(B, C) * 3.0
    x[0] += 200.0  # exp overflows float32 unless the row max is subtracted
    x[1] -= 200.0
    x = x.to(DT)  # shifted in float32 so the stored logits are exactly what PyTorch used
    y = (F.log_softmax if log else F.softmax)(x / T, dim=1)
    return dict(B=B, C=C, T=T, logits=x, out=y)


def cross_entropy(name, B, C, smoothing, scale):
    seed(name)
    x = rnd(B, C, scale=2.0)
    labels = torch.randint(0, C, (B,))
    loss = F.cross_entropy(x, labels, reduction="mean", label_smoothing=smoothing)
    # ops.h: dlogits += scale * d(mean CE)/dlogits, i.e. an upstream gradient of `scale`.
    loss.backward(torch.tensor(scale, dtype=DT))
    return dict(B=B, C=C, smoothing=smoothing, scale=scale, logits=x, labels=labels.to(DT),
                loss=loss, probs=F.softmax(x, dim=1), dlogits=x.grad)


CASES = [
    ("linear", lambda n: linear(n, 4, 7, 5)),
    ("linear_nobias", lambda n: linear(n, 3, 6, 4, bias=False)),
    ("conv_3x3_s1_p1", lambda n: conv(n, 2, 3, 6, 5, 4, 3, 1, 1, 1)),
    ("conv_3x3_s2_p1", lambda n: conv(n, 2, 3, 7, 6, 4, 3, 2, 1, 1)),
    ("conv_1x1", lambda n: conv(n, 2, 4, 5, 4, 6, 1, 1, 0, 1)),
    ("conv_grouped_g2", lambda n: conv(n, 2, 4, 5, 6, 6, 3, 1, 1, 2)),
    ("conv_depthwise_3x3", lambda n: conv(n, 2, 4, 6, 5, 4, 3, 1, 1, 4)),
    ("conv_depthwise_3x3_s2", lambda n: conv(n, 2, 3, 7, 8, 3, 3, 2, 1, 3)),
    ("conv_3x3_nobias", lambda n: conv(n, 2, 2, 5, 5, 3, 3, 1, 1, 1, bias=False)),
    # Beyond the required list: paths the dispatcher may treat specially.
    ("conv_3x3_p0", lambda n: conv(n, 2, 3, 6, 7, 2, 3, 1, 0, 1)),  # "valid", stride 1
    ("conv_1x1_s2", lambda n: conv(n, 2, 4, 6, 5, 3, 1, 2, 0, 1)),  # ResNet-style shortcut
    ("conv_depthwise_mult2", lambda n: conv(n, 2, 3, 5, 5, 6, 3, 1, 1, 3)),  # groups=Cin, Cout=2*Cin
    ("maxpool_2x2_s2", lambda n: maxpool(n, 2, 3, 6, 8, 2, 2)),
    ("maxpool_3x3_s2", lambda n: maxpool(n, 2, 3, 8, 7, 3, 2)),  # overlapping windows, floor
    ("maxpool_2x2_s2_ties", lambda n: maxpool_ties(n, 2, 2, 7, 5, 2, 2)),  # odd: floor
    ("maxpool_3x3_s2_ties", lambda n: maxpool_ties(n, 2, 2, 7, 7, 3, 2)),
    ("avgpool_2x2_s2", lambda n: avgpool(n, 2, 3, 5, 6, 2, 2)),  # odd H: last row dropped
    ("gap", lambda n: gap(n, 3, 4, 3, 5)),
    ("bn2d_train", lambda n: batchnorm(n, (4, 3, 3, 5), True)),
    ("bn2d_eval", lambda n: batchnorm(n, (4, 3, 3, 5), False)),
    ("bn1d_train", lambda n: batchnorm(n, (8, 5), True)),
    ("relu", lambda n: relu(n, 37)),
    ("gelu", lambda n: gelu(n, 41)),
    ("dropout", lambda n: dropout(n, 40, 0.3)),
    ("add", lambda n: add(n, 33)),
    ("softmax_T1", lambda n: softmax(n, 4, 7, 1.0, False)),
    ("softmax_T4", lambda n: softmax(n, 4, 7, 4.0, False)),
    ("log_softmax_T1", lambda n: softmax(n, 4, 7, 1.0, True)),
    ("log_softmax_T4", lambda n: softmax(n, 4, 7, 4.0, True)),
    ("cross_entropy_ls0", lambda n: cross_entropy(n, 6, 10, 0.0, 1.0)),
    ("cross_entropy_ls0.1", lambda n: cross_entropy(n, 6, 10, 0.1, 0.75)),
]


def main():
    torch.set_grad_enabled(True)
    os.makedirs(OUT_DIR, exist_ok=True)
    total = 0
    for name, fn in CASES:
        total += write_case(name, fn(name))
    print("wrote %d cases, %d bytes, to %s" % (len(CASES), total, OUT_DIR))


if __name__ == "__main__":
    main()

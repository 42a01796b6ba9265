#!/usr/bin/python3
# Golden fixtures of the ONNX importer (tests/e2e/test_onnx_import.c): small PyTorch models
# exported to tests/fixtures/onnx/NAME.onnx with a fixed input (NAME.in.npy, (B, C*H*W)) and
# PyTorch's eval-mode logits (NAME.out.npy, (B, classes)); and broken files (bad-*.onnx), one per
# error path of the importer. Run by hand with Debian's python3-torch (1.13) and python3-onnx:
#   /usr/bin/python3 scripts/onnx-fixtures.py
# The C tests never need Python. Every .onnx stays under 100 KB.
import os

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "onnx")
torch.manual_seed(13)


def bn(c):
    b = nn.BatchNorm2d(c)
    with torch.no_grad():  # non-trivial running statistics, so eval mode is really tested
        b.running_mean.uniform_(-0.5, 0.5)
        b.running_var.uniform_(0.5, 2.0)
        b.weight.uniform_(0.5, 1.5)
        b.bias.uniform_(-0.3, 0.3)
    return b


class ResNetBlock(nn.Module):
    """A ResNet-style stem and basic block (one with a strided 1x1 projection shortcut)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), bn(8), nn.ReLU(), nn.MaxPool2d(2))
        self.c1 = nn.Conv2d(8, 16, 3, 2, 1, bias=False)
        self.b1 = bn(16)
        self.c2 = nn.Conv2d(16, 16, 3, 1, 1, bias=False)
        self.b2 = bn(16)
        self.down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), bn(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        y = F.relu(y + self.down(x))
        y = F.adaptive_avg_pool2d(y, 1)
        return self.fc(torch.flatten(y, 1))


class MobileNetV2Block(nn.Module):
    """A MobileNetV2 stem and inverted residual (expand 1x1, depthwise 3x3, project 1x1) with ReLU6."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), bn(8), nn.ReLU6())
        self.block = nn.Sequential(nn.Conv2d(8, 24, 1, bias=False), bn(24), nn.ReLU6(),
                                   nn.Conv2d(24, 24, 3, 1, 1, groups=24, bias=False), bn(24), nn.ReLU6(),
                                   nn.Conv2d(24, 8, 1, bias=False), bn(8))
        self.head = nn.Sequential(nn.Conv2d(8, 32, 1, bias=False), bn(32), nn.ReLU6())
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.block(x)
        x = F.adaptive_avg_pool2d(self.head(x), 1).flatten(1)
        return self.fc(self.drop(x))


class SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.fc1 = nn.Conv2d(c, r, 1)
        self.fc2 = nn.Conv2d(r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


class MobileNetV3Block(nn.Module):
    """A MobileNetV3 stem and bneck with hard-swish and squeeze-excitation (hard-sigmoid gate),
    input normalisation inside the graph (Sub/Div by per-channel constants) and a softmax at the end."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), bn(16), nn.Hardswish())
        self.expand = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), bn(32), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 5, 1, 2, groups=32, bias=False), bn(32), nn.Hardswish())
        self.se = SE(32, 8)
        self.project = nn.Sequential(nn.Conv2d(32, 16, 1, bias=False), bn(16))
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = self.stem(x)
        x = x + self.project(self.se(self.dw(self.expand(x))))
        x = F.adaptive_avg_pool2d(x, 1).view(x.size(0), -1)
        x = F.hardswish(self.fc1(x))
        return torch.softmax(self.fc2(x), dim=1)


class SmallCNN(nn.Module):
    """Pool padding, ceil_mode and count_include_pad, a dilated conv, an asymmetric pad, a concat of
    two branches, leaky ReLU and sigmoid, a scalar affine, the Shape/Gather/Concat/Reshape chain of
    x.view(x.size(0), -1) under a dynamic batch, a Gemm and a MatMul with a bias Add."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 1, 1)
        self.pool1 = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.a = nn.Conv2d(8, 8, 3, 1, 2, dilation=2)
        self.b = nn.Conv2d(8, 4, 1)
        self.pool2 = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.pool3 = nn.AvgPool2d(2, 2)
        self.c3 = nn.Conv2d(12, 8, 2, 1, 0)
        self.fc = nn.Linear(8 * 2 * 2, 24)
        self.w = nn.Parameter(torch.randn(24, 10) * 0.2)
        self.bias = nn.Parameter(torch.randn(10) * 0.1)

    def forward(self, x):
        x = x * 2.0 - 1.0
        x = F.leaky_relu(self.c1(x), 0.1)
        x = self.pool1(x)                              # 16 -> 9 (ceil)
        x = torch.cat([F.relu(self.a(x)), torch.sigmoid(self.b(x))], 1)
        x = self.pool2(x)                              # 9 -> 5
        x = F.pad(x, (0, 1, 0, 1))                     # asymmetric: 5 -> 6
        x = self.pool3(x)                              # 6 -> 3
        x = F.leaky_relu(self.c3(x), 0.2)              # 3 -> 2
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc(x))
        return torch.matmul(x, self.w) + self.bias


class FashionCNN(nn.Module):
    """A 1x28x28 teacher for the CLI tests (import, eval, kd with a fitnet term on its ONNX names)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), bn(8), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, 1, 1, bias=False), bn(16), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def export(name, model, opset, dynamic, x, keep_bn=False):
    model.eval()
    path = os.path.join(OUT, name + ".onnx")
    kw = {}
    if dynamic:
        kw["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    if keep_bn:  # BatchNormalization nodes as they are (eval mode folds them into the convs)
        kw["training"] = torch.onnx.TrainingMode.PRESERVE
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["logits"],
                      do_constant_folding=True, **kw)
    with torch.no_grad():
        y = model(x)
        if name.startswith("mobilenetv3"):
            y = torch.log(y)  # the importer drops the softmax: compare with logits up to a constant
            y = y - y.mean(1, keepdim=True)
    np.save(os.path.join(OUT, name + ".in.npy"), x.reshape(x.shape[0], -1).numpy().astype(np.float32))
    np.save(os.path.join(OUT, name + ".out.npy"), y.numpy().astype(np.float32))
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return m


def save(name, m):
    onnx.save(m, os.path.join(OUT, name + ".onnx"))


def to_typed(m, fp16):
    """Store every float initializer in the typed fields (float_data, or FLOAT16 bits in int32_data)."""
    for t in m.graph.initializer:
        if t.data_type != TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(t)
        t.ClearField("raw_data")
        if fp16:
            t.data_type = TensorProto.FLOAT16
            t.int32_data.extend(a.astype(np.float16).view(np.uint16).astype(np.int32).flatten().tolist())
        else:
            t.float_data.extend(a.flatten().tolist())
    return m


def tiny(nodes, inits, inputs=None, opset=13, in_shape=(1, 3, 4, 4), out_shape=(1, 2)):
    """A hand-made graph for the error paths."""
    if inputs is None:
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_shape))]
    g = helper.make_graph(nodes, "bad", inputs,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnx-fixtures")


def bad_files():
    w = numpy_helper.from_array(np.ones((2, 3 * 4 * 4), np.float32), "w")
    flat = helper.make_node("Flatten", ["input"], ["f"], name="flat")
    gemm = helper.make_node("Gemm", ["f", "w"], ["y"], name="fc", transB=1)
    good = tiny([flat, gemm], [w])
    save("tiny-ok", good)
    # the normalisation `distill export` stores in the metadata, read back
    meta = tiny([flat, gemm], [w])
    helper.set_model_props(meta, {"distill.normalize.mean": "0.5,0.25,0.125", "distill.normalize.std": "2,1,0.5"})
    save("tiny-norm", meta)
    meta = tiny([flat, gemm], [w])
    helper.set_model_props(meta, {"distill.normalize.mean": "0.5,0.25", "distill.normalize.std": "2,1,0.5"})
    save("bad-norm-meta", meta)
    # an operator we do not have
    save("bad-op", tiny([flat, helper.make_node("Gemm", ["f", "w"], ["g"], name="fc", transB=1),
                         helper.make_node("Tanh", ["g"], ["y"], name="my_tanh")], [w]))
    # an attribute we do not support
    conv_w = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "cw")
    save("bad-attr", tiny([helper.make_node("Conv", ["input", "cw"], ["c"], name="conv_same", auto_pad="SAME_LOWER"),
                           helper.make_node("GlobalAveragePool", ["c"], ["p"], name="gap"),
                           helper.make_node("Flatten", ["p"], ["y"], name="flat")], [conv_w]))
    # an opset outside 11..17
    save("bad-opset", tiny([flat, gemm], [w], opset=9))
    # two graph inputs
    save("bad-two-inputs", tiny([flat, gemm], [w], inputs=[
        helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4]),
        helper.make_tensor_value_info("other", TensorProto.FLOAT, [1, 3, 4, 4])]))
    # a height that is not known
    save("bad-dynamic", tiny([flat, gemm], [w], inputs=[
        helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", 4])]))
    # weights in an external file
    ext = tiny([flat, gemm], [w])
    t = ext.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="weights.bin")
    save("bad-external", ext)
    # an initializer that claims more bytes than it holds
    short = tiny([flat, gemm], [w])
    short.graph.initializer[0].raw_data = short.graph.initializer[0].raw_data[:40]
    save("bad-short-init", short)
    # float64 weights
    d = numpy_helper.from_array(np.ones((2, 3 * 4 * 4), np.float64), "w")
    save("bad-dtype", tiny([flat, gemm], [d]))
    # a weight tensor too large for a model (dims only; the data check comes after the size check)
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20])
    save("bad-huge", tiny([flat, gemm], [huge]))
    # a Reshape whose shape is computed from the input's values (not constant)
    save("bad-reshape", tiny([helper.make_node("Flatten", ["input"], ["f0"], name="flat0"),
                              helper.make_node("Reshape", ["input", "f0"], ["y"], name="reshape_dyn")], []))
    # constant folding: a Slice step too large for plain arithmetic, a Concat with an empty input name
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
    consts = [i64("shp", [48, 1]), i64("st", [0]), i64("en", [2]), i64("ax", [0]), i64("huge", [(1 << 63) - 1])]
    save("bad-slice-step", tiny([helper.make_node("Slice", ["shp", "st", "en", "ax", "huge"], ["s"], name="slice"),
                                 helper.make_node("Reshape", ["input", "s"], ["y"], name="reshape")], consts))
    save("bad-concat-empty", tiny([helper.make_node("Concat", ["shp", ""], ["s"], name="cat", axis=0),
                                   helper.make_node("Reshape", ["input", "s"], ["y"], name="reshape")], consts))
    # a node that reads a value nothing produces
    save("bad-undefined", tiny([flat, helper.make_node("Gemm", ["f", "nowhere"], ["y"], name="fc", transB=1)], []))


def handmade(x):
    """What PyTorch's exporter does not write: asymmetric Conv pads, Identity and Dropout nodes, a
    constant minus the tensor, Div, HardSigmoid's own alpha/beta, Mul of two tensors, Squeeze and
    Unsqueeze (axes as inputs), a Concat of three, Gemm with transB 0, alpha and beta, Clip with only
    a min. The reference is computed with the equivalent PyTorch operations."""
    g = torch.Generator().manual_seed(5)
    w1, b1 = torch.randn(4, 3, 3, 3, generator=g) * 0.3, torch.randn(4, generator=g) * 0.1
    B, C = torch.randn(12, 5, generator=g) * 0.5, torch.randn(5, generator=g) * 0.1
    I = lambda name, t: numpy_helper.from_array(t.numpy().astype(np.float32) if t.dtype != torch.int64 else t.numpy(), name)
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["conv"], name="conv", pads=[0, 0, 1, 1], strides=[2, 2],
                         kernel_shape=[3, 3]),
        helper.make_node("Identity", ["conv"], ["ident"], name="ident"),
        helper.make_node("Dropout", ["ident"], ["drop", "mask"], name="drop"),
        helper.make_node("Sub", ["half", "drop"], ["sub"], name="sub"),
        helper.make_node("Div", ["sub", "four"], ["div"], name="div"),
        helper.make_node("HardSigmoid", ["div"], ["hsig"], name="hsig", alpha=0.3, beta=0.4),
        helper.make_node("Relu", ["drop"], ["relu"], name="relu"),
        helper.make_node("Mul", ["relu", "hsig"], ["mul"], name="mul"),
        helper.make_node("GlobalAveragePool", ["mul"], ["gap"], name="gap"),
        helper.make_node("Squeeze", ["gap", "axes"], ["sq"], name="sq"),
        helper.make_node("Unsqueeze", ["sq", "axes"], ["unsq"], name="unsq"),
        helper.make_node("GlobalAveragePool", ["drop"], ["gap2"], name="gap2"),
        helper.make_node("Concat", ["unsq", "gap", "gap2"], ["cat"], name="cat", axis=1),
        helper.make_node("Flatten", ["cat"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "B", "C"], ["gemm"], name="gemm", alpha=0.5, beta=2.0),
        helper.make_node("Clip", ["gemm", "lo", ""], ["y"], name="clip"),
    ]
    inits = [I("w1", w1), I("b1", b1), I("B", B), I("C", C), I("half", torch.tensor(0.5)), I("four", torch.tensor([4.0])),
             I("axes", torch.tensor([2, 3])), I("lo", torch.tensor(-1.0))]
    gr = helper.make_graph(nodes, "handmade", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    m = helper.make_model(gr, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx-fixtures")
    onnx.checker.check_model(m)
    save("handmade", m)
    a = F.conv2d(F.pad(x, (0, 1, 0, 1)), w1, b1, stride=2)
    h = torch.clamp(0.3 * ((0.5 - a) / 4.0) + 0.4, 0, 1)
    gap = (F.relu(a) * h).mean([2, 3])
    cat = torch.cat([gap, gap, a.mean([2, 3])], 1)
    y = torch.clamp(0.5 * cat @ B + 2.0 * C, min=-1.0)
    np.save(os.path.join(OUT, "handmade.in.npy"), x.reshape(x.shape[0], -1).numpy().astype(np.float32))
    np.save(os.path.join(OUT, "handmade.out.npy"), y.numpy().astype(np.float32))


def main():
    os.makedirs(OUT, exist_ok=True)
    x = torch.rand(2, 3, 16, 16)
    export("resnet_block", ResNetBlock(), 13, True, x, keep_bn=True)
    with torch.no_grad():  # weights exactly representable in fp16: the fp16 file has the same logits
        r = ResNetBlock()
        for p in list(r.parameters()) + list(r.buffers()):
            if p.dtype == torch.float32:
                p.copy_(p.half().float())
    m = export("resnet_block_fp16", r, 13, False, x, keep_bn=True)
    save("resnet_block_fp16", to_typed(m, True))
    m = export("mobilenetv2_block", MobileNetV2Block(), 11, False, x)
    save("mobilenetv2_block", to_typed(m, False))
    export("mobilenetv3_block", MobileNetV3Block(), 17, True, x)
    export("small_cnn", SmallCNN(), 13, True, x)
    export("fashion_cnn", FashionCNN(), 13, True, torch.rand(2, 1, 28, 28), keep_bn=True)
    handmade(torch.rand(2, 3, 8, 8))
    bad_files()
    for f in sorted(os.listdir(OUT)):
        size = os.path.getsize(os.path.join(OUT, f))
        assert size < 100 * 1024, f
        print(f"{f:32s} {size:7d} bytes")


if __name__ == "__main__":
    main()

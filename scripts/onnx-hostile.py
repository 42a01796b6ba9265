#!/usr/bin/env python3
"""Hostile ONNX files for the importer's limits, written byte by byte (no onnx package needed):
tests/fixtures/onnx/bad-*.onnx (tests/e2e/test_onnx_import.c) and tests/fuzz/corpus/onnx/bad-*
(tests/unit/test_fuzz_corpus.c). Run from the repository root: python3 scripts/onnx-hostile.py"""
import struct


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if not n:
            return bytes(out + bytes([b]))
        out.append(b | 0x80)


def ld(field, payload):  # a length-delimited field (message, string, bytes)
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def vi(field, n):  # a varint field
    return varint(field << 3) + varint(n)


def s(field, text):
    return ld(field, text.encode())


def value_info(name, dims):  # ValueInfoProto: name 1, type 2 -> TypeProto.tensor_type 1
    shape = b"".join(ld(1, vi(1, d)) for d in dims)  # TensorShapeProto.dim 1 -> dim_value 1
    return s(1, name) + ld(2, ld(1, vi(1, 1) + ld(2, shape)))  # elem_type float, shape


def tensor(name, dims, floats=None, ints=None):  # TensorProto: dims 1, data_type 2, name 8, raw_data 9
    if ints is not None:
        return b"".join(vi(1, d) for d in dims) + vi(2, 7) + s(8, name) + ld(9, struct.pack("<%dq" % len(ints), *ints))
    return b"".join(vi(1, d) for d in dims) + vi(2, 1) + s(8, name) + ld(9, struct.pack("<%df" % len(floats), *floats))


def ints_attr(name, values):  # AttributeProto: name 1, ints 8, type 20 (INTS = 7)
    return ld(5, s(1, name) + b"".join(vi(8, v) for v in values) + vi(20, 7))


def node(op, inputs, outputs, name, attrs=b""):  # NodeProto: input 1, output 2, name 3, op_type 4, attribute 5
    return b"".join(s(1, i) for i in inputs) + b"".join(s(2, o) for o in outputs) + s(3, name) + s(4, op) + attrs


def model(nodes, inits, in_dims=(1, 3, 4, 4), out_dims=(1, 2), out="y"):
    """ModelProto: ir_version 1, opset_import 8 (version 2), graph 7 (node 1, name 2, initializer 5,
    input 11, output 12)."""
    g = b"".join(ld(1, n) for n in nodes) + s(2, "bad") + b"".join(ld(5, t) for t in inits)
    g += ld(11, value_info("input", in_dims)) + ld(12, value_info(out, out_dims))
    return vi(1, 8) + ld(8, vi(2, 13)) + ld(7, g)


def nested(depth):
    """AttributeProto.g (6) -> GraphProto.node (1) -> NodeProto.attribute (5) -> AttributeProto ...
    `depth` times: protobuf-c's unpack would recurse 3 * depth messages deep."""
    m = b""
    for _ in range(depth):
        m = ld(6, ld(1, ld(5, m)))
    return vi(1, 8) + ld(7, ld(1, ld(5, m)))


def save(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    save("tests/fuzz/corpus/onnx/bad-nested", nested(10000))
    # 8M zeros from a 100-byte file: over the constants' budget (twice the file's size plus 2^22)
    budget = model([node("ConstantOfShape", ["shp"], ["zeros"], "cos")], [tensor("shp", [1], ints=[1 << 23])])
    save("tests/fixtures/onnx/bad-budget.onnx", budget)
    save("tests/fuzz/corpus/onnx/bad-budget", budget)
    # a Div by a per-channel constant holding 0: an infinite scale
    div = model([node("Div", ["input", "z"], ["y"], "div")], [tensor("z", [3, 1, 1], floats=[0.5, 0, 2])],
                out_dims=(1, 3, 4, 4))
    save("tests/fixtures/onnx/bad-div-zero.onnx", div)
    save("tests/fuzz/corpus/onnx/bad-div-zero", div)
    # a MatMul + Add (a linear layer, named after the Add) whose output name is too long for a layer
    long = "y" * 200
    mm = model([node("Flatten", ["input"], ["f"], "flat"), node("MatMul", ["f", "w"], ["mm"], "mm"),
                node("Add", ["mm", "b"], [long], "add")],
               [tensor("w", [48, 2], floats=[0.01] * 96), tensor("b", [2], floats=[0.5, -0.5])], out=long)
    save("tests/fixtures/onnx/bad-long-name.onnx", mm)
    # a Conv dilation over the model's limit (KD_CONV_MAX_DILATION)
    dil = model([node("Conv", ["input", "w"], ["y"], "conv", ints_attr("dilations", [17, 17]))],
                [tensor("w", [2, 3, 1, 1], floats=[0.1] * 6)], out_dims=(1, 2, 4, 4))
    save("tests/fixtures/onnx/bad-dilation.onnx", dil)
    # not hostile: a squeeze-excitation gate built with Flatten + Reshape (N, C) -> (N, C, 1, 1)
    se = model([node("GlobalAveragePool", ["input"], ["gap"], "gap"), node("Flatten", ["gap"], ["f"], "flat"),
                node("Reshape", ["f", "shp"], ["r"], "view"), node("Sigmoid", ["r"], ["gate"], "sig"),
                node("Mul", ["input", "gate"], ["se"], "se"), node("GlobalAveragePool", ["se"], ["gap2"], "gap2"),
                node("Flatten", ["gap2"], ["y"], "flat2")],
               [tensor("shp", [4], ints=[1, 3, 1, 1])], out_dims=(1, 3))
    save("tests/fixtures/onnx/reshape-se.onnx", se)
    # Mul of (N, C, H, W) by (N, C): right-aligned broadcasting, not per channel
    mix = model([node("GlobalAveragePool", ["input"], ["gap"], "gap"), node("Flatten", ["gap"], ["f"], "flat"),
                 node("Mul", ["input", "f"], ["m"], "mul"), node("GlobalAveragePool", ["m"], ["gap2"], "gap2"),
                 node("Flatten", ["gap2"], ["y"], "flat2")], [], out_dims=(1, 3))
    save("tests/fixtures/onnx/bad-rank-mix.onnx", mix)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Reads a Distill checkpoint with an independent parser (json + numpy, following the safetensors
spec) and, if the `safetensors` package is installed, with it too; prints every tensor's shape and
checks the two agree. Run by hand: /usr/bin/python3 tests/golden/check_safetensors.py FILE"""
import json, struct, sys

import numpy as np

path = sys.argv[1]
raw = open(path, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
meta = header.pop("__metadata__", {})
data = raw[8 + n:]
tensors = {}
for name, t in sorted(header.items()):
    assert t["dtype"] == "F32", t
    b, e = t["data_offsets"]
    tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"])
    print(f"{name:28s} {str(list(t['shape'])):18s} mean {tensors[name].mean():+.5f}")
print("metadata:", {k: (v if len(v) < 40 else v[:37] + "...") for k, v in meta.items()})
try:
    from safetensors.numpy import load_file
except ImportError:
    print("(the safetensors package is not installed; the independent parser read the file)")
else:
    ref = load_file(path)
    assert set(ref) == set(tensors) and all(np.array_equal(ref[k], tensors[k]) for k in ref)
    print("safetensors.numpy.load_file agrees")

#!/usr/bin/python3
"""Reads a Distill checkpoint with an independent parser written from the safetensors spec (json +
numpy, no Distill code) and checks everything the spec requires; then, if PyTorch is installed,
builds the model described in the checkpoint's YAML as torch modules and loads the tensors into it
with load_state_dict(strict=True), which shows the names and shapes are PyTorch's; and if the
`safetensors` package is installed, checks that it reads the same tensors.
Run by hand:  /usr/bin/python3 tests/golden/check_safetensors.py FILE [--no-torch]
Exit status 0 when every check passes."""
import json
import struct
import sys

import numpy as np


def read(path):
    raw = open(path, "rb").read()
    assert len(raw) >= 8, "shorter than the 8-byte header length"
    (n,) = struct.unpack("<Q", raw[:8])
    assert n <= len(raw) - 8, f"header length {n} beyond the file ({len(raw)} bytes)"
    text = raw[8:8 + n].decode("utf-8")
    header = json.loads(text)  # trailing spaces (the padding) are allowed by JSON
    assert text.rstrip(" ") == text.strip(), "padding other than trailing spaces"
    meta = header.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()), "metadata must map str to str"
    data = raw[8 + n:]
    tensors, spans = {}, []
    for name, t in header.items():
        assert t["dtype"] == "F32", (name, t["dtype"])
        shape = t["shape"]
        assert all(isinstance(d, int) and d >= 0 for d in shape), (name, shape)
        b, e = t["data_offsets"]
        assert isinstance(b, int) and isinstance(e, int) and 0 <= b <= e <= len(data), (name, b, e)
        assert e - b == 4 * int(np.prod(shape, dtype=np.int64)), (name, shape, b, e)
        arr = np.frombuffer(data[b:e], dtype="<f4").reshape(shape)
        assert np.isfinite(arr).all(), f"{name} holds NaN/inf"
        tensors[name] = arr
        spans.append((b, e, name))
    pos = 0
    for b, e, name in sorted(spans):  # the spec: contiguous, no holes, no overlaps, nothing after
        assert b == pos, f"{name} starts at {b}, expected {pos}"
        pos = e
    assert pos == len(data), f"{len(data) - pos} bytes after the last tensor"
    return n, meta, tensors


def torch_model(yaml_text):
    """The layers of a Distill YAML with parameters or state, as torch modules keyed by layer name."""
    import torch.nn as nn
    import yaml

    spec = yaml.safe_load(yaml_text)
    c, h, w = spec["input"]
    shapes, vec, mods, counts = {}, {}, {}, {}
    prev = None
    for L in spec["layers"]:
        ty = L["type"]
        counts[ty] = counts.get(ty, 0) + 1
        name = L.get("name", f"{ty}{counts[ty]}")
        ins = L.get("inputs", [prev] if prev else [None])
        ci, hi, wi = shapes[ins[0]] if ins[0] else (c, h, w)
        if ty == "conv2d":
            k, s, p, g = L["kernel"], L.get("stride", 1), L.get("pad", 0), L.get("groups", 1)
            mod = nn.Conv2d(ci, L["out"], k, s, p, groups=g, bias=L.get("bias", True))
            out = (L["out"], (hi + 2 * p - k) // s + 1, (wi + 2 * p - k) // s + 1)
        elif ty == "linear":
            mod, out = nn.Linear(ci * hi * wi, L["out"], bias=L.get("bias", True)), (L["out"], 1, 1)
        elif ty == "batchnorm":
            cls = nn.BatchNorm1d if vec.get(ins[0], False) else nn.BatchNorm2d
            mod, out = cls(ci, eps=L.get("eps", 1e-5), momentum=L.get("momentum", 0.1)), (ci, hi, wi)
        elif ty in ("maxpool", "avgpool"):
            k = L.get("kernel", 2)
            s = L.get("stride", k)
            mod = (nn.MaxPool2d if ty == "maxpool" else nn.AvgPool2d)(k, s)
            out = (ci, (hi - k) // s + 1, (wi - k) // s + 1)
        elif ty == "global_avgpool":
            mod, out = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), (ci, 1, 1)
        elif ty in ("relu", "gelu", "dropout", "add"):
            mod = {"relu": nn.ReLU(), "gelu": nn.GELU(), "dropout": nn.Dropout(L.get("p", 0.5)), "add": None}[ty]
            out = (ci, hi, wi)
        elif ty == "flatten":
            mod, out = nn.Flatten(), (ci * hi * wi, 1, 1)
        else:
            raise ValueError(f"layer type {ty} unknown to this script")
        shapes[name] = out
        vec[name] = ty in ("linear", "flatten", "global_avgpool") or vec.get(ins[0], False)
        if mod is not None:
            mods[name] = mod
        prev = name
    return mods


def main():
    path = sys.argv[1]
    n, meta, tensors = read(path)
    print(f"{path}: header {n} bytes ({'8-byte aligned data' if n % 8 == 0 else 'unaligned data'}), "
          f"{len(tensors)} tensors, all F32, finite, contiguous")
    for name in sorted(tensors):
        t = tensors[name]
        print(f"  {name:32s} {str(list(t.shape)):18s} mean {t.mean() if t.size else 0:+.5f}")
    assert meta.get("format") == "distill" and meta.get("version") == "1" and "model_yaml" in meta, meta.keys()
    if "optimizer" in meta:
        opt = json.loads(meta["optimizer"])
        print("optimizer:", opt)
        moments = {k for k in tensors if k.startswith("optim.")}
        params = {k for k in tensors if not k.startswith("optim.") and not k.endswith(("running_mean", "running_var"))}
        want = {"optim.m." + p for p in params} | ({"optim.v." + p for p in params} if opt["type"] == "adamw" else set())
        assert moments == want, "optimizer moments do not mirror the parameters"
    state = {k: meta[k] for k in ("epoch", "step", "rng_state", "rng_inc", "best_val_acc") if k in meta}
    if state:
        print("training state:", state)

    if "--no-torch" not in sys.argv:
        try:
            import torch
        except ImportError:
            print("(PyTorch not installed: skipped loading into torch modules)")
        else:
            mods = torch_model(meta["model_yaml"])
            net = torch.nn.ModuleDict(mods)
            sd = {k: torch.from_numpy(v.copy()) for k, v in tensors.items() if not k.startswith("optim.")}
            for name, mod in mods.items():  # PyTorch's BN also counts batches; Distill does not need it
                if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                    sd[name + ".num_batches_tracked"] = torch.tensor(0)
            net.load_state_dict(sd, strict=True)
            print(f"PyTorch: load_state_dict(strict=True) into {len(mods)} torch modules built from the YAML: OK "
                  f"({sum(p.numel() for p in net.parameters())} parameters)")
    try:
        from safetensors.numpy import load_file
    except ImportError:
        print("(the safetensors package is not installed; the independent parser above read the file)")
    else:
        ref = load_file(path)
        assert set(ref) == set(tensors) and all(np.array_equal(ref[k], tensors[k]) for k in ref)
        print("safetensors.numpy.load_file agrees")
    print("OK")


if __name__ == "__main__":
    main()

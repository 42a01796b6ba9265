#!/usr/bin/python3
"""Writes Fashion-MNIST (Debian's dataset-fashion-mnist, IDX) as an image folder for bench/imgdir_decode.sh:
OUT/train/<class>/NNNNN.png and OUT/test/<class>/NNNNN.png, RGB 32x32 (28x28 resized bilinearly by PIL,
the grey value copied into R, G and B), class folders named after the classes.
Usage: bench/imgdir_write.py OUT [LIMIT]  (LIMIT: at most this many images per split; default all)"""
import gzip
import os
import sys

import numpy as np
from PIL import Image

SRC = "/usr/share/datasets/fashion-mnist"
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    out = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
    for split, stem in (("train", "train"), ("test", "t10k")):
        x = idx(os.path.join(SRC, "%s-images-idx3-ubyte.gz" % stem))[:limit]
        y = idx(os.path.join(SRC, "%s-labels-idx1-ubyte.gz" % stem))[:limit]
        for c in CLASSES:
            os.makedirs(os.path.join(out, split, c), exist_ok=True)
        for i, (img, label) in enumerate(zip(x, y)):
            im = Image.fromarray(img, "L").resize((32, 32), Image.BILINEAR).convert("RGB")
            im.save(os.path.join(out, split, CLASSES[label], "%05d.png" % i))
        print("%s: %d images" % (split, len(x)))


if __name__ == "__main__":
    main()

"""The reference for bench/imgdir_decode.sh: what a PyTorch user's loader does for every epoch
(torchvision's ImageFolder: PIL open, convert to RGB, to an array), over the same PNG folder, one
process, one thread. Prints images/s. Usage: /usr/bin/python3 bench/imgdir_pil.py DIR [SPLIT]"""
import os
import sys
import time

import numpy as np
from PIL import Image

root = os.path.join(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "train")
files = [os.path.join(root, c, f) for c in sorted(os.listdir(root)) for f in sorted(os.listdir(os.path.join(root, c)))]
t0 = time.perf_counter()
s = 0
for p in files:
    with Image.open(p) as im:
        s += int(np.asarray(im.convert("RGB"))[0, 0, 0])
t = time.perf_counter() - t0
print(f"PIL (ImageFolder's decode, every epoch): {len(files)} images in {t:.2f} s, {len(files) / t:.0f} images/s")

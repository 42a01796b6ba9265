#!/usr/bin/python3
"""Writes the image fixtures of tests/unit/test_images.c and test_imgdir.c (run by hand with Debian's
python3-pil, python3-numpy and python3-torch; the outputs are committed, the C tests need no Python):

tests/fixtures/data/images/
  decode/      one small file per decoder case (PNG grey/RGB/palette/16-bit/alpha/interlaced, JPEG
               grey/RGB, PGM/PPM binary/ASCII/16-bit, BMP 8-bit palette/grey, 24-bit bottom-up and
               top-down, 32-bit), plus a JPEG named .png
  golden.txt   one line per case: NAME C H W then C*H*W planar (CHW) bytes, what kd_image_load must give:
               lossless decodes exactly; JPEG as PIL decodes it (the test allows a small error); resize
               cases "resize:FILE:FIT:H:W" by PyTorch F.interpolate(bilinear, align_corners=False,
               antialias=False) on float32, rounded, with the crop / pad placement of image.c
  two/         train/<class>/ and test/<class>/ layout, 3 classes, mixed formats, 12x10 (w x h) RGB
  one/         one <class>/ tree (3 classes x 5 images) to be split by the loader
  grey/        one <class>/ tree of grey images only (the loader then gives 1 channel)
"""
import io
import math
import os
import shutil
import struct

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "data", "images")
W, H = 12, 10
rng = np.random.default_rng(14)


def rgb_image(seed_shift=0):
    """A 10x12 RGB image with gradients (resize has something to interpolate) and some noise."""
    y, x = np.mgrid[0:H, 0:W]
    r = (x * 21 + seed_shift * 40) % 256
    g = (y * 25 + x * 3) % 256
    b = (255 - x * 10 - y * 8 + seed_shift * 17) % 256
    img = np.stack([r, g, b], -1).astype(np.int64) + rng.integers(-8, 9, size=(H, W, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def grey_image(seed_shift=0):
    return rgb_image(seed_shift)[:, :, 1].copy()


def planar(a):
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def luma(a):  # BT.601, rounded half up, as image.c
    a = a.astype(np.int64)
    return ((299 * a[..., 0] + 587 * a[..., 1] + 114 * a[..., 2] + 500) // 1000).astype(np.uint8)


def write_pnm(path, a, maxval=255, ascii_=False, comment=None):
    c = 1 if a.ndim == 2 else 3
    magic = {(1, False): b"P5", (3, False): b"P6", (1, True): b"P2", (3, True): b"P3"}[(c, ascii_)]
    head = magic + b"\n" + (b"# " + comment.encode() + b"\n" if comment else b"")
    head += b"%d %d\n%d\n" % (a.shape[1], a.shape[0], maxval)
    vals = a.reshape(-1).astype(np.int64)
    if ascii_:
        body = "\n".join(" ".join(str(v) for v in vals[i:i + 12]) for i in range(0, len(vals), 12)).encode() + b"\n"
    elif maxval > 255:
        body = vals.astype(">u2").tobytes()
    else:
        body = vals.astype(np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(head + body)


def write_bmp24(path, a, top_down):
    """24-bit BI_RGB by hand (PIL writes only bottom-up)."""
    h, w, _ = a.shape
    stride = (w * 3 + 3) // 4 * 4
    rows = []
    for y in (range(h) if top_down else range(h - 1, -1, -1)):
        row = a[y, :, ::-1].tobytes()
        rows.append(row + b"\0" * (stride - len(row)))
    data = b"".join(rows)
    dib = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    head = struct.pack("<2sIHHI", b"BM", 14 + 40 + len(data), 0, 0, 54)
    with open(path, "wb") as f:
        f.write(head + dib + data)


def resize_ref(a, oh, ow, fit):
    """Planar uint8 (C, H, W) fitted to oh x ow as image.c does, the scaling by PyTorch."""
    c, h, w = a.shape
    if fit == "stretch":
        vh, vw = oh, ow
    else:
        s = max(oh / h, ow / w) if fit == "crop" else min(oh / h, ow / w)
        vh, vw = int(math.floor(h * s + 0.5)), int(math.floor(w * s + 0.5))
        if fit == "crop":
            vh, vw = max(vh, oh), max(vw, ow)
        else:
            vh, vw = max(1, min(vh, oh)), max(1, min(vw, ow))
    t = torch.from_numpy(a.astype(np.float32))[None]
    v = F.interpolate(t, size=(vh, vw), mode="bilinear", align_corners=False, antialias=False)[0].numpy()
    v = np.floor(np.clip(v, 0, 255) + 0.5).astype(np.uint8)
    out = np.zeros((c, oh, ow), np.uint8)
    if fit == "pad":
        y0, x0 = (oh - vh) // 2, (ow - vw) // 2
        out[:, y0:y0 + vh, x0:x0 + vw] = v
    else:
        y0, x0 = (vh - oh) // 2, (vw - ow) // 2
        out[:] = v[:, y0:y0 + oh, x0:x0 + ow]
    return out


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    dec = os.path.join(ROOT, "decode")
    os.makedirs(dec)
    golden = []

    def gold(name, chw):
        golden.append("%s %d %d %d %s" % (name, chw.shape[0], chw.shape[1], chw.shape[2],
                                          " ".join(str(int(v)) for v in chw.reshape(-1))))

    rgb, grey = rgb_image(0), grey_image(1)
    p = lambda n: os.path.join(dec, n)  # noqa: E731

    Image.fromarray(grey, "L").save(p("grey.png"))
    gold("grey.png", planar(grey))
    Image.fromarray(rgb, "RGB").save(p("rgb.png"))
    gold("rgb.png", planar(rgb))
    Image.fromarray(rgb, "RGB").save(p("interlaced.png"), interlace=1)
    gold("interlaced.png", planar(rgb))
    pal = Image.fromarray(rgb, "RGB").quantize(colors=16)
    pal.save(p("palette.png"))
    gold("palette.png", planar(np.array(pal.convert("RGB"))))
    g16 = np.minimum(grey.astype(np.uint32) * 257 + rng.integers(0, 257, size=grey.shape), 65535).astype(np.uint16)
    Image.fromarray(g16.astype(np.int32), "I").convert("I;16").save(p("grey16.png"))
    back = np.array(Image.open(p("grey16.png"))).astype(np.int64)
    assert (back == g16).all(), "PIL did not keep the 16-bit values"
    gold("grey16.png", planar(((back * 255 + 32767) // 65535).astype(np.uint8)))
    alpha = rng.integers(0, 256, size=(H, W), dtype=np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(p("rgba.png"))
    gold("rgba.png", planar(rgb))  # alpha dropped, colour kept
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(p("grey-alpha.png"))
    gold("grey-alpha.png", planar(grey))

    Image.fromarray(rgb, "RGB").save(p("rgb.jpg"), quality=92)
    gold("rgb.jpg", planar(np.array(Image.open(p("rgb.jpg")).convert("RGB"))))
    Image.fromarray(grey, "L").save(p("grey.jpeg"), quality=92)
    gold("grey.jpeg", planar(np.array(Image.open(p("grey.jpeg")))))
    Image.fromarray(rgb, "RGB").convert("CMYK").save(p("cmyk.jpg"), quality=50)  # refused: no golden
    shutil.copy(p("rgb.jpg"), p("jpeg-named.png"))  # told by its bytes, not its name
    gold("jpeg-named.png", planar(np.array(Image.open(p("rgb.jpg")).convert("RGB"))))

    write_pnm(p("grey.pgm"), grey)
    gold("grey.pgm", planar(grey))
    write_pnm(p("rgb.ppm"), rgb)
    gold("rgb.ppm", planar(rgb))
    write_pnm(p("ascii.pgm"), grey, ascii_=True, comment="written by scripts/fixtures-images.py")
    gold("ascii.pgm", planar(grey))
    a100 = (rgb.astype(np.int64) * 100 + 127) // 255
    write_pnm(p("ascii100.ppm"), a100, maxval=100, ascii_=True)
    gold("ascii100.ppm", planar(((a100 * 255 + 50) // 100).astype(np.uint8)))
    r16 = np.minimum(rgb.astype(np.int64) * 257 + rng.integers(0, 257, size=rgb.shape), 65535)
    write_pnm(p("rgb16.ppm"), r16, maxval=65535)
    gold("rgb16.ppm", planar(((r16 * 255 + 32767) // 65535).astype(np.uint8)))

    write_bmp24(p("bottom-up.bmp"), rgb, top_down=False)
    gold("bottom-up.bmp", planar(rgb))
    write_bmp24(p("top-down.bmp"), rgb, top_down=True)
    gold("top-down.bmp", planar(rgb))
    pal.save(p("palette.bmp"))
    gold("palette.bmp", planar(np.array(pal.convert("RGB"))))
    Image.fromarray(grey, "L").save(p("grey.bmp"))
    gold("grey.bmp", planar(grey))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(p("rgba.bmp"))
    gold("rgba.bmp", planar(rgb))

    # Channel conversion: RGB -> grey by BT.601 luma, grey -> RGB by copying.
    gold("grey-of:rgb.png", planar(luma(rgb)))
    gold("rgb-of:grey.png", planar(np.dstack([grey] * 3)))

    # Resizing (the reference is PyTorch; the test allows 1 level).
    for name, src in (("rgb.png", planar(rgb)), ("grey.png", planar(grey))):
        for fit, oh, ow in (("stretch", 7, 9), ("stretch", 20, 16), ("crop", 8, 8), ("pad", 8, 8),
                            ("crop", 16, 30), ("pad", 16, 30), ("crop", 5, 3)):
            gold("resize:%s:%s:%d:%d" % (name, fit, oh, ow), resize_ref(src, oh, ow, fit))

    with open(os.path.join(ROOT, "golden.txt"), "w") as f:
        f.write("\n".join(golden) + "\n")

    # Folders: classes cat, dog, frog; each image's class is visible in its colours.
    formats = [("png", "RGB"), ("jpg", "RGB"), ("ppm", "RGB"), ("bmp", "RGB"), ("png", "P")]

    def save(path, k, i, grey_only=False):
        a = rgb_image(k * 2 + i % 2)
        ext, mode = formats[i % len(formats)]
        if grey_only:
            ext = ("png", "pgm")[i % 2]
            im = Image.fromarray(a[:, :, 1].copy(), "L")
        else:
            im = Image.fromarray(a, "RGB")
            if mode == "P":
                im = im.quantize(colors=32)
        path = "%s.%s" % (path, ext)
        if ext == "jpg":
            im.save(path, quality=90)
        elif ext in ("ppm", "pgm"):
            write_pnm(path, np.array(im))
        else:
            im.save(path)

    classes = ["cat", "dog", "frog"]
    for part, count in (("train", 4), ("test", 2)):
        for k, c in enumerate(classes):
            d = os.path.join(ROOT, "two", part, c)
            os.makedirs(d)
            for i in range(count + k % 2):
                save(os.path.join(d, "%s%02d" % (c, i)), k, i + (part == "test"))
    for k, c in enumerate(classes):
        d = os.path.join(ROOT, "one", c)
        os.makedirs(d)
        for i in range(5):
            save(os.path.join(d, "img%d" % i), k, i)
    with open(os.path.join(ROOT, "one", "README.txt"), "w") as f:
        f.write("not an image: the loader ignores (and counts) it\n")
    with open(os.path.join(ROOT, "one", "cat", "notes.txt"), "w") as f:
        f.write("not an image either\n")
    for k, c in enumerate(["a", "b"]):
        d = os.path.join(ROOT, "grey", c)
        os.makedirs(d)
        for i in range(3):
            save(os.path.join(d, "g%d" % i), k, i, grey_only=True)


if __name__ == "__main__":
    main()

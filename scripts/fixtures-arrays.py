#!/usr/bin/python3
"""Writes the small array and table fixtures under tests/fixtures/data/{cifar,numpy,csv}/ that
tests/unit/test_cifar.c, test_numpy_data.c and test_csv.c read (run by hand from the repository
root; the outputs are committed, ctest never runs Python). Values follow simple formulas the C
tests recompute: pixel j of CIFAR record i is (7*i + j) % 256, and so on (see each block)."""
import os
import subprocess
import tempfile
import zipfile

import numpy as np

ROOT = os.path.join("tests", "fixtures", "data")


def out(*parts):
    p = os.path.join(ROOT, *parts)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def write(path, data, mode="wb"):
    with open(out(*path.split("/")), mode) as f:
        f.write(data)


# ---- CIFAR: record i of a file: label byte(s) then 3072 pixels (7*i + j) % 256 -----------------------
def cifar_records(n, labels, fine=None):
    recs = b""
    for i in range(n):
        px = bytes((7 * i + j) % 256 for j in range(3072))
        head = bytes([labels[i]]) if fine is None else bytes([fine[i][0], fine[i][1]])
        recs += head + px
    return recs


write("cifar/c10/data_batch_1.bin", cifar_records(6, [0, 1, 2, 3, 4, 5]))
write("cifar/c10/data_batch_2.bin", cifar_records(4, [6, 7, 8, 9]))
write("cifar/c10/test_batch.bin", cifar_records(3, [9, 0, 1]))
write("cifar/c10/batches.meta.txt", "\n".join("name%d" % k for k in range(10)) + "\n\n", "w")
# CIFAR-100 in the cifar-100-binary/ sub-directory, without a names file; (coarse, fine) labels
write("cifar/c100/cifar-100-binary/train.bin", cifar_records(5, None, [(1, 99), (2, 5), (3, 0), (4, 50), (5, 99)]))
write("cifar/c100/cifar-100-binary/test.bin", cifar_records(2, None, [(0, 7), (0, 8)]))
# a list of files to split: 4 of each of 3 classes
write("cifar/list/data_batch_1.bin", cifar_records(12, [k % 3 for k in range(12)]))
# broken ones
write("cifar/bad/data_batch_1.bin", cifar_records(2, [0, 1]) + b"\0" * 5)        # not whole records
write("cifar/badlabel/data_batch_1.bin", cifar_records(3, [0, 12, 1]))          # label 12 of 10
write("cifar/badlabel/test_batch.bin", cifar_records(1, [0]))
write("cifar/badnames/data_batch_1.bin", cifar_records(1, [0]))
write("cifar/badnames/batches.meta.txt", "a\nb\nc\n", "w")                       # 3 names of 10

# ---- NumPy ------------------------------------------------------------------------------------------
# images: uint8 NHWC 8x8x3, value (n*192 + (y*8+x)*3 + c) % 256; labels n % 3
def img(n0, n):
    a = np.zeros((n, 8, 8, 3), np.uint8)
    for i in range(n):
        for y in range(8):
            for x in range(8):
                for c in range(3):
                    a[i, y, x, c] = ((n0 + i) * 192 + (y * 8 + x) * 3 + c) % 256
    return a


np.savez(out("numpy", "img.npz"), x_train=img(0, 6), y_train=np.arange(6) % 3,
         x_test=img(6, 3), y_test=np.array([2, 1, 0], np.int64))
# a table: float32 (N, 5), value i + f/8, labels uint8 (N, 1) i % 2 (compressed)
tab = lambda n0, n: np.array([[i + f / 8 for f in range(5)] for i in range(n0, n0 + n)], np.float32)
np.savez_compressed(out("numpy", "tab.npz"), x_train=tab(0, 10), y_train=(np.arange(10) % 2).astype(np.uint8)[:, None],
                    x_test=tab(10, 4), y_test=np.array([0, 1, 0, 3], np.int32))
# the same members in a zip64 archive (Info-ZIP's zip -fz: zip64 extras and end records)
with tempfile.TemporaryDirectory() as d:
    with zipfile.ZipFile(out("numpy", "tab.npz")) as zf:
        zf.extractall(d)
    for f in os.listdir(d):
        os.utime(os.path.join(d, f), (315532800, 315532800))  # 1980-01-02: the same bytes on every run
    dst = os.path.abspath(out("numpy", "zip64.npz"))
    if os.path.exists(dst):
        os.remove(dst)
    subprocess.run(["zip", "-q", "-fz", "-X", dst, "x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"], cwd=d,
                   check=True)
# a pair to split: float64 (20, 3) value i*3 + f, labels int16 i % 4
np.save(out("numpy", "X.npy"), np.arange(60, dtype=np.float64).reshape(20, 3))
np.save(out("numpy", "Y.npy"), (np.arange(20) % 4).astype(np.int16))
# four files: uint8 (N, 6, 5) channel-less value (i*30 + j) % 256; big-endian int32 labels
np.save(out("numpy", "xtr.npy"), np.array([(i * 30 + np.arange(30)) % 256 for i in range(4)], np.uint8).reshape(4, 6, 5))
np.save(out("numpy", "ytr.npy"), np.array([0, 1, 1, 0], ">i4"))
np.save(out("numpy", "xte.npy"), np.array([(i * 30 + np.arange(30)) % 256 for i in range(4, 6)], np.uint8).reshape(2, 6, 5))
np.save(out("numpy", "yte.npy"), np.array([1, 4], ">i4"))
# NCHW float32 (2, 3, 4, 5): channel-first is kept as it is (last dimension 5 is no channel count)
np.save(out("numpy", "nchw.npy"), np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5))
np.save(out("numpy", "nchw_y.npy"), np.array([0, 1], np.uint8))
# broken ones
bad = np.arange(12, dtype=np.float32).reshape(4, 3)
bad[2, 1] = np.nan
np.save(out("numpy", "bad-nan.npy"), bad)
np.save(out("numpy", "bad-fortran.npy"), np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3)))
np.save(out("numpy", "bad-neg.npy"), np.array([0, 1, -1, 2], np.int8))
np.save(out("numpy", "bad-floaty.npy"), np.array([0, 1, 1, 2], np.float32))
np.save(out("numpy", "bad-y3.npy"), np.array([0, 1, 1], np.int8))
np.save(out("numpy", "bad-i16x.npy"), np.zeros((4, 3), np.int16))
np.savez(out("numpy", "bad-missing.npz"), x_train=tab(0, 2), y_train=np.array([0, 1]), x_test=tab(0, 2))
with open(out("numpy", "img.npz"), "rb") as f:
    z = bytearray(f.read())
k = z.index(b"x_test.npy")                       # first local header's name: flip one data byte after it
k = z.index(b"\x93NUMPY", k) + 200
z[k] ^= 0xFF
with open(out("numpy", "bad-crc.npz"), "wb") as f:
    f.write(bytes(z))
with zipfile.ZipFile(out("numpy", "bad-bzip2.npz"), "w", zipfile.ZIP_BZIP2) as zf:
    for name in ("x_train", "y_train", "x_test", "y_test"):
        zf.writestr(zipfile.ZipInfo(name + ".npy", (1980, 1, 1, 0, 0, 0)), b"\x93NUMPY", zipfile.ZIP_BZIP2)

# ---- CSV / TSV ----------------------------------------------------------------------------------------
write("csv/header.csv", "a,b,c,label\n1,2,3,0\n4,5,6,1\n7,8.5,-9,1\n1e2,0,0,2\n", "w")
# no header, CRLF, a BOM, no last newline, a blank line, a quoted number
write("csv/noheader.csv", "\ufeff0.5,1,3\r\n2,\"3.25\",0\r\n\r\n4,5,1", "w")
# string labels in the first column (by name), a quoted label with a comma and a doubled quote
write("csv/strings.csv", 'species,x,y\nsetosa,1,2\n"versi, ""color""",3,4\nsetosa,5,6\nbig,7,8\n', "w")
write("csv/tab.tsv", "x\ty\tz\n1\t2\t0\n3\t4\t1\n", "w")
write("csv/semi.csv", "x;y;z\n1;2;0\n3;4;1\n", "w")
# train/test with string labels: "c" only in test, mapped the same in both
write("csv/train.csv", "f1,f2,cls\n1,2,b\n3,4,a\n5,6,b\n", "w")
write("csv/test.csv", "f1,f2,cls\n7,8,c\n9,10,a\n", "w")
# one file to split: 3 classes x 5 rows
write("csv/split.csv", "".join("%d,%d,%d\n" % (i, i * i, i % 3) for i in range(15)), "w")
# scikit-learn's bundled layout (N, F, class names)
write("csv/sklearn.csv", "4,2,alpha,beta\n1,2,0\n3,4,1\n5,6,1\n7,8,0\n", "w")
write("csv/bad-ragged.csv", "a,b,c\n1,2,0\n3,4\n5,6,1\n", "w")
write("csv/bad-missing.csv", "a,b,c\n1,2,0\n3,,1\n", "w")
write("csv/bad-nonnum.csv", "a,b,c\n1,2,0\n3,4,1\n5,x7,0\n", "w")
write("csv/bad-nan.csv", "1,2,0\n3,nan,1\n", "w")
write("csv/bad-onecol.csv", "1\n2\n", "w")
write("csv/bad-empty.csv", "a,b,c\n", "w")
write("csv/bad-ambiguous.csv", "a,b;c\n1,2;3\n", "w")
write("csv/bad-quote.csv", "a,b,c\n1,\"2,0\n", "w")

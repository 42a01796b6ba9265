#!/usr/bin/python3
"""The wine table bundled in Debian's python3-sklearn (sklearn/datasets/data/wine_data.csv: 178
wines, 13 features, 3 cultivars), one fixed stratified split, and scikit-learn's MLPClassifier on it
over 5 seeds: the reference beside Distill's CE and KD students in bench/wine.sh.

Usage: wine_sklearn.py OUTDIR [--test-fraction 0.3] [--seed 1] [--seeds 5]
Writes OUTDIR/train.csv and OUTDIR/test.csv (a header row, 13 feature columns, the label last: the
split Distill reads with --data OUTDIR/train.csv,OUTDIR/test.csv) and prints one line per seed and
a summary line "sklearn MLPClassifier: mean X% (min, max)". Features are standardised with the
training split's mean and std, as Distill normalises tables (per feature, training split)."""
import argparse
import os

import numpy as np
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

ap = argparse.ArgumentParser()
ap.add_argument("outdir")
ap.add_argument("--test-fraction", type=float, default=0.3)
ap.add_argument("--seed", type=int, default=1, help="seed of the split")
ap.add_argument("--seeds", type=int, default=5, help="MLP seeds 1..N")
a = ap.parse_args()

wine = load_wine()  # reads sklearn/datasets/data/wine_data.csv
x, y = wine.data, wine.target
xtr, xte, ytr, yte = train_test_split(x, y, test_size=a.test_fraction, random_state=a.seed, stratify=y)
os.makedirs(a.outdir, exist_ok=True)
header = ",".join(n.replace(",", " ") for n in wine.feature_names) + ",class"
for name, xs, ys in (("train", xtr, ytr), ("test", xte, yte)):
    with open(os.path.join(a.outdir, name + ".csv"), "w") as f:
        f.write(header + "\n")
        for row, lab in zip(xs, ys):
            f.write(",".join(repr(float(v)) for v in row) + ",%d\n" % lab)
print("split: %d train, %d test (stratified, test fraction %g, seed %d) in %s" % (len(ytr), len(yte),
      a.test_fraction, a.seed, a.outdir))

sc = StandardScaler().fit(xtr)
accs = []
for s in range(1, a.seeds + 1):
    m = MLPClassifier(hidden_layer_sizes=(64,), max_iter=2000, random_state=s).fit(sc.transform(xtr), ytr)
    acc = 100.0 * m.score(sc.transform(xte), yte)
    accs.append(acc)
    print("sklearn MLPClassifier (64 hidden, adam) seed %d: %.2f%%" % (s, acc))
print("sklearn MLPClassifier: mean %.2f%% (min %.2f, max %.2f) over %d seeds" % (np.mean(accs), min(accs), max(accs),
      len(accs)))

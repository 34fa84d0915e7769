"""The simple strong baseline for the head: multinomial logistic regression (scikit-learn, L-BFGS,
C=1) on the same features, standardized on the train split, evaluated on the test split. Also prints
the features' statistics, which tell whether a head fed them raw is in trouble.
Usage: python3 scripts/baseline_logreg.py FEATURES.sqlite [LAYER]"""
import sqlite3
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

path = sys.argv[1]
db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
rows = db.execute("SELECT split, label, vector FROM features ORDER BY id").fetchall()
split = np.array([r[0] for r in rows])
labels = np.array([r[1] for r in rows])
x = np.stack([np.frombuffer(r[2], dtype="<f4") for r in rows]).astype(np.float64)
train, test = split == "train", split == "test"
print(f"features: {len(rows)} x {x.shape[1]}; train mean {x[train].mean():.3g}, std {x[train].std():.3g}, max {x[train].max():.3g}, "
      f"per-dimension std from {x[train].std(0).min():.3g} to {x[train].std(0).max():.3g}")
scaler = StandardScaler().fit(x[train])
started = time.time()
model = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(x[train]), labels[train])
accuracy = (model.predict(scaler.transform(x[test])) == labels[test]).mean()
print(f"logistic regression (standardized, C=1): test accuracy {accuracy:.4f} on {test.sum()} images, {time.time() - started:.1f} s")

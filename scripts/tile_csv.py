"""Writes a CSV in the Kaggle Sign Language MNIST layout (header, then label,pixel1..pixel784) of N
rows drawn from a real one's rows, each pixel moved by -3..+3 (seeded), so that a full-size input can
be timed without the full data. For timing only: the rows repeat.
Usage: python3 scripts/tile_csv.py SOURCE.csv OUT.csv N [SEED]   (SOURCE may have a header)"""
import sys

import numpy as np

source, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
with open(source) as f:
    skip = 1 if f.read(5) == "label" else 0
rows = np.loadtxt(source, delimiter=",", dtype=np.int64, skiprows=skip, ndmin=2)
if rows.shape[1] != 785:
    raise SystemExit(f"{source}: expected 785 columns (label and 784 pixels), found {rows.shape[1]}")
rng = np.random.default_rng(seed)
data = rows[rng.integers(0, len(rows), count)]
data[:, 1:] = np.clip(data[:, 1:] + rng.integers(-3, 4, (count, 784)), 0, 255)
header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
np.savetxt(out, data, fmt="%d", delimiter=",", header=header, comments="")

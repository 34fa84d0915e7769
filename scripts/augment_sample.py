"""Makes a larger data set shaped like the real thing from the embedded sample's 199 real rows, for
measuring the head (not for training a useful model): each source image becomes VIEWS views (shift
up to 2 px, rotation up to 10 degrees, scale 0.9-1.1, brightness and contrast +-10%), and the split is
by source image, a quarter of each class's sources (at least one) held out for test, so that no test
view shares a source with a training view.
Usage: python3 scripts/augment_sample.py OUT_FOLDER [VIEWS] [SEED]   -> OUT_FOLDER/train.csv, test.csv"""
import os
import sys

import numpy as np
from scipy import ndimage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = sys.argv[1]
views = int(sys.argv[2]) if len(sys.argv) > 2 else 40
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
rows = np.concatenate([np.loadtxt(os.path.join(ROOT, "pipelines/data/sign-mnist-sample", name), delimiter=",", dtype=np.int64, skiprows=1)
                       for name in ("train.csv", "test.csv")])
rng = np.random.default_rng(seed)
test_sources = set()
for label in np.unique(rows[:, 0]):
    sources = np.flatnonzero(rows[:, 0] == label)
    rng.shuffle(sources)
    test_sources.update(sources[: max(1, len(sources) // 4)].tolist())


def view(image):
    angle = np.deg2rad(rng.uniform(-10, 10))
    scale = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-2, 2, 2)
    c, s = np.cos(angle) / scale, np.sin(angle) / scale
    matrix = np.array([[c, -s], [s, c]])
    centre = np.array([13.5, 13.5])
    offset = centre - matrix @ (centre + shift)
    moved = ndimage.affine_transform(image.astype(np.float64), matrix, offset=offset, order=1, mode="nearest")
    moved = (moved - moved.mean()) * rng.uniform(0.9, 1.1) + moved.mean() * rng.uniform(0.9, 1.1)
    return np.clip(np.rint(moved), 0, 255).astype(np.int64)


header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
os.makedirs(out, exist_ok=True)
for split in ("train", "test"):
    chosen = [i for i in range(len(rows)) if (i in test_sources) == (split == "test")]
    data = np.array([[rows[i, 0]] + view(rows[i, 1:].reshape(28, 28)).ravel().tolist() for i in chosen for _ in range(views)])
    np.savetxt(os.path.join(out, f"{split}.csv"), data, fmt="%d", delimiter=",", header=header, comments="")
    print(f"{split}: {len(chosen)} source images, {len(data)} views")

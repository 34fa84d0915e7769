"""Writes a features.sqlite in SignTransfer's schema with Gaussian class clusters instead of ResNet50
features: 24 classes (the Sign MNIST labels) or the first CLASSES of them, 2048 dimensions, N_TRAIN train
and N_TEST test vectors, each SCALE * (centre + noise) + OFFSET (real features are not centred: an
OFFSET of 3 and a SCALE of 10 make clusters a head fed raw vectors cannot learn).
For comparing heads (ours against Keras) at full size without the real features.
Usage: python make_cluster_features.py OUT.sqlite [N_TRAIN N_TEST SIGMA SEED [CLASSES OFFSET SCALE]]"""
import hashlib, sqlite3, sys
import numpy as np

out = sys.argv[1]
n_train, n_test = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (27455, 7172)
sigma = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
classes = int(sys.argv[6]) if len(sys.argv) > 6 else 24
offset = float(sys.argv[7]) if len(sys.argv) > 7 else 0.0
scale = float(sys.argv[8]) if len(sys.argv) > 8 else 1.0
rng = np.random.default_rng(seed)
labels = [l for l in range(25) if l != 9][:classes]
centres = rng.normal(0, 1, (len(labels), 2048)).astype("float32")
db = sqlite3.connect(out)
db.executescript("""
DROP TABLE IF EXISTS features; DROP TABLE IF EXISTS maps; DROP TABLE IF EXISTS backbone; DROP TABLE IF EXISTS meta;
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
CREATE TABLE features (id INTEGER NOT NULL, split TEXT NOT NULL, label INTEGER NOT NULL, layer TEXT NOT NULL, vector BLOB NOT NULL,
                       PRIMARY KEY (id, layer));
CREATE TABLE maps (id INTEGER NOT NULL, layer TEXT NOT NULL, height INTEGER NOT NULL, width INTEGER NOT NULL, channels INTEGER NOT NULL,
                   data BLOB NOT NULL, PRIMARY KEY (id, layer));
CREATE TABLE backbone (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
""")
content = hashlib.sha256()
next_id = 1
for split, n in (("train", n_train), ("test", n_test)):
    k = rng.integers(0, len(labels), n)
    x = (scale * (centres[k] + rng.normal(0, sigma, (n, 2048))) + offset).astype("<f4")
    rows = []
    for i in range(n):
        rows.append((next_id, split, labels[k[i]], "conv5_block3_out", x[i].tobytes()))
        content.update(x[i].tobytes())
        next_id += 1
    db.executemany("INSERT INTO features VALUES (?, ?, ?, ?, ?)", rows)
db.executemany("INSERT INTO backbone VALUES (?, ?)", [("weights", f"synthetic gaussian clusters (sigma {sigma}, seed {seed}, offset {offset}, scale {scale})"),
                                                      ("weights_md5", ""), ("random", "0"), ("input_size", "0"),
                                                      ("layers", "conv5_block3_out"), ("keep", "")])
db.executemany("INSERT INTO meta VALUES (?, ?)", [("kind", "signtransfer.features"), ("schema_version", "2"),
                                                  ("content_sha256", content.hexdigest())])
db.commit()
print(f"wrote {out}: {n_train} train, {n_test} test, sigma {sigma}")

"""Builds the committed Keras parity fixture in Tests/Fixtures/keras-parity/.

The 94 MB of ResNet50 weights are not committed: they come from a counter-based generator that
NumPy (here) and Swift (Tests/Fixtures/ParityWeights.swift) compute bit for bit alike, so the Swift
tests regenerate them, write them as a Keras 2 HDF5 file through libhdf5 and read them back through
the product's real reader. What is committed is what Keras computes from them:

  layout.json            every layer in model order, its weights' names and shapes (the file's tree)
  meta.json              seed, labels, sizes, block names, largest reference values, weights' SHA-256
  source_28.npy          (4,28,28) uint8: the first four rows of the sample's train.csv
  resized_S.npy          (4,S,S) float32: tf.image.resize bilinear, before rounding
  inputs_S.npy           (4,S,S,3) uint8: rounded, clipped, replicated: the backbone's input
  features_S.npy         (4,2048) float32: Keras's pooled output for them (caffe preprocessing)
  blocks_S.npy           (4,15104) float32: the global average of every block output
                         conv2_block1_out .. conv5_block3_out, concatenated in that order
  keras2-conv1.h5        conv1_conv and conv1_bn only, Keras 2 layout (fixed-length byte strings, ':0')
  keras3-conv1.h5        the same two layers, Keras 3 layout (variable-length UTF-8, no suffix)
  keras2-truncated.h5    the first half of keras2-conv1.h5
  keras2-missing-bn.h5   conv1_conv only, while layer_names still lists conv1_bn

The generator. For tensor t (0, 1, ... in model order: layers in order, each layer's weights in
order) and element i of it (C order), with seed s:
  key = (s << 48) ^ (t << 32) ^ i,  x = SplitMix64's output function of key (one step from state key),
  u = x >> 48 (16 bits), c = 2u - 65535 (odd, in [-65535, 65535]); then by weight:
    kernel (kh,kw,in,out)  c / 65536 * 2^(1 - e), e = bit_length(kh*kw*(in+out)) // 2  (about Glorot's limit)
    bias                   c / 65536 / 16
    gamma                  0.5 + u / 65536
    beta, moving_mean      c / 65536 / 8
    moving_variance        0.5 + 1.5 u / 65536
    depthwise_kernel (kh,kw,C,1)  c / 65536 * 2^(1 - e), e = bit_length(kh*kw*2) // 2   (MobileNetV2, EfficientNetB0)
    mean, variance         as moving_mean, moving_variance (EfficientNet's Normalization layer)
Every value is k / 2^m with few significant bits, so float64 -> float32 is exact in both languages;
BatchNorm statistics and conv biases are non-trivial, so a fold that ignores any of them fails.

Regenerate (TensorFlow CPU, Keras 3, h5py; about a minute):
  python3 scripts/make_parity_fixture.py [OUT] [SEED]
OUT defaults to Tests/Fixtures/keras-parity, SEED to 1.

The full 94 MB weights file alone, in the official file's Keras 2 layout, from the committed
layout.json (NumPy and h5py only, no TensorFlow; for benchmarks that need a real-sized file):
  python3 scripts/make_parity_fixture.py --weights OUT.h5

Keras's own initialisation of ResNet50 (Glorot-uniform kernels, zero biases, identity BatchNorm),
seeded, in the same layout: the "Keras-initialised backbone" whose features are not centred, for
measuring the head on real images without the ImageNet weights (needs TensorFlow):
  python3 scripts/make_parity_fixture.py --keras-init OUT.h5 SEED
"""
import hashlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import h5py  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "Tests/Fixtures/keras-parity")
SAMPLE = os.path.join(ROOT, "pipelines/data/sign-mnist-sample/train.csv")
SIZES = [32, 64, 224]
COUNT = 4
BLOCKS = [f"conv{stage}_block{block}_out" for stage, blocks in [(2, 3), (3, 4), (4, 6), (5, 3)] for block in range(1, blocks + 1)]

def splitmix64(keys):
    """SplitMix64's output for states `keys` (uint64 array); NumPy's uint64 arithmetic wraps."""
    with np.errstate(over="ignore"):
        z = keys + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def generated(seed, tensor, kind, shape):
    count = int(np.prod(shape))
    keys = (np.uint64(seed) << np.uint64(48)) ^ (np.uint64(tensor) << np.uint64(32)) ^ np.arange(count, dtype=np.uint64)
    u = (splitmix64(keys) >> np.uint64(48)).astype(np.float64)
    c = 2 * u - 65535
    if kind == "kernel":
        kh, kw, cin, cout = shape
        e = (kh * kw * (cin + cout)).bit_length() // 2
        values = c / 65536 * 2.0 ** (1 - e)
    elif kind == "depthwise_kernel":
        kh, kw, _, _ = shape
        e = (kh * kw * 2).bit_length() // 2
        values = c / 65536 * 2.0 ** (1 - e)
    elif kind == "bias":
        values = c / 65536 / 16
    elif kind == "gamma":
        values = 0.5 + u / 65536
    elif kind in ("beta", "moving_mean", "mean"):
        values = c / 65536 / 8
    elif kind in ("moving_variance", "variance"):
        values = 0.5 + 1.5 * u / 65536
    else:
        raise SystemExit(f"unexpected weight kind {kind}")
    single = values.astype(np.float32)
    assert np.array_equal(single.astype(np.float64), values), "a generated value is not exact in float32"
    return single.reshape(shape)


def write_weights(path, layers, style, keep=None, drop_groups=()):
    """The Keras HDF5 weights layout: root attribute layer_names, a group per layer whose attribute
    weight_names lists datasets at /<layer>/<layer>/<weight>."""
    suffix = ":0" if style == "keras2" else ""

    def strings(names):
        if style == "keras2":
            return np.array([n.encode("utf8") for n in names])
        return np.array(names, dtype=h5py.string_dtype())

    chosen = [entry for entry in layers if keep is None or entry["name"] in keep]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = strings([entry["name"] for entry in chosen])
        f.attrs["backend"] = b"tensorflow" if style == "keras2" else "tensorflow"
        f.attrs["keras_version"] = b"2.2.4" if style == "keras2" else "3.15.1"
        for entry in chosen:
            if entry["name"] in drop_groups:
                continue
            group = f.create_group(entry["name"])
            names = [f"{entry['name']}/{w['name']}{suffix}" for w in entry["weights"]]
            group.attrs["weight_names"] = strings(names)
            for name, w in zip(names, entry["weights"]):
                group.create_dataset(name, data=w["values"])


def main(out, seed):
    import keras
    import tensorflow as tf

    os.makedirs(out, exist_ok=True)
    model = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg")
    layers, digest, tensor = [], hashlib.sha256(), 0
    for layer in model.layers:
        entry = {"name": layer.name, "weights": []}
        values = []
        for w in layer.weights:
            kind = w.path.split("/")[-1]
            array = generated(seed, tensor, kind, tuple(w.shape))
            digest.update(array.astype("<f4").tobytes())
            entry["weights"].append({"name": kind, "shape": list(array.shape), "tensor": tensor, "values": array})
            values.append(array)
            tensor += 1
        if values:
            layer.set_weights(values)
        layers.append(entry)

    layout = [{"name": e["name"], "weights": [{k: w[k] for k in ("name", "shape", "tensor")} for w in e["weights"]]} for e in layers]
    with open(os.path.join(out, "layout.json"), "w") as f:
        json.dump(layout, f, separators=(",", ":"))
        f.write("\n")

    write_weights(os.path.join(out, "keras2-conv1.h5"), layers, "keras2", keep={"conv1_conv", "conv1_bn"})
    write_weights(os.path.join(out, "keras3-conv1.h5"), layers, "keras3", keep={"conv1_conv", "conv1_bn"})
    write_weights(os.path.join(out, "keras2-missing-bn.h5"), layers, "keras2", keep={"conv1_conv", "conv1_bn"}, drop_groups={"conv1_bn"})
    whole = open(os.path.join(out, "keras2-conv1.h5"), "rb").read()
    with open(os.path.join(out, "keras2-truncated.h5"), "wb") as f:
        f.write(whole[: len(whole) // 2])

    rows = np.loadtxt(SAMPLE, delimiter=",", dtype=np.int64, skiprows=1)[:COUNT]
    gray = rows[:, 1:].reshape(-1, 28, 28, 1).astype("float32")
    meta = {"seed": seed, "labels": rows[:, 0].tolist(), "sizes": SIZES, "blocks": BLOCKS,
            "block_channels": [int(model.get_layer(b).output.shape[-1]) for b in BLOCKS],
            "weights_sha256": digest.hexdigest(), "tensors": tensor,
            "tensorflow": tf.__version__, "keras": keras.__version__}
    np.save(os.path.join(out, "source_28.npy"), gray[..., 0].astype("uint8"))
    pooled = keras.Model(model.input, [keras.layers.GlobalAveragePooling2D()(model.get_layer(b).output) for b in BLOCKS])
    for s in SIZES:
        resized = tf.image.resize(gray, (s, s), method="bilinear").numpy()
        np.save(os.path.join(out, f"resized_{s}.npy"), resized[..., 0].astype("float32"))
        u8 = np.clip(np.round(resized), 0, 255).astype("uint8")
        x = np.repeat(u8, 3, axis=-1)
        np.save(os.path.join(out, f"inputs_{s}.npy"), x)
        caffe = keras.applications.resnet50.preprocess_input(x.astype("float32"))
        features = model.predict(caffe, verbose=0).astype("float32")
        np.save(os.path.join(out, f"features_{s}.npy"), features)
        blocks = np.concatenate([np.asarray(b) for b in pooled.predict(caffe, verbose=0)], axis=1).astype("float32")
        assert np.allclose(blocks[:, -2048:], features, rtol=0, atol=1e-5 * np.abs(features).max())
        np.save(os.path.join(out, f"blocks_{s}.npy"), blocks)
        meta[f"features_{s}_absmax"] = float(np.abs(features).max())
        meta[f"features_{s}_mean"] = float(features.mean())
        meta[f"blocks_{s}_absmax"] = [float(np.abs(p).max()) for p in np.split(blocks, np.cumsum(meta["block_channels"])[:-1], axis=1)]
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps({k: v for k, v in meta.items() if not k.startswith("blocks_")}))


def weights_only(path):
    """The full weights file from the committed layout and seed, without TensorFlow."""
    with open(os.path.join(FIXTURE, "layout.json")) as f:
        layout = json.load(f)
    with open(os.path.join(FIXTURE, "meta.json")) as f:
        seed = json.load(f)["seed"]
    layers = [{"name": e["name"], "weights": [dict(w, values=generated(seed, w["tensor"], w["name"], tuple(w["shape"]))) for w in e["weights"]]}
              for e in layout]
    write_weights(path, layers, "keras2")
    print(f"{path}: {sum(len(e['weights']) for e in layers)} tensors, seed {seed}")


def keras_init(path, seed):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg")
    layers = [{"name": layer.name, "weights": [{"name": w.path.split("/")[-1], "values": np.asarray(w.numpy(), dtype="float32")}
                                               for w in layer.weights]} for layer in model.layers]
    write_weights(path, layers, "keras2")
    print(f"{path}: Keras's initialisation, seed {seed}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--keras-init"] and len(args) == 3:
        keras_init(args[1], int(args[2]))
    elif args[:1] == ["--weights"] and len(args) == 2:
        weights_only(args[1])
    else:
        main(args[0] if args else FIXTURE, int(args[1]) if len(args) > 1 else 1)

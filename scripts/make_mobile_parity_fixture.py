"""Builds the committed Keras parity fixtures of the mobile backbones:
Tests/Fixtures/keras-parity-mobilenetv2/ and Tests/Fixtures/keras-parity-efficientnetb0/.

As for ResNet50 (scripts/make_parity_fixture.py, whose generator this uses), the weights are not
committed: Tests/Fixtures/ParityWeights.swift makes them again bit for bit from layout.json and the
seed, writes them as a Keras 2 HDF5 file and reads them through the product's reader. What is
committed is what Keras computes from them, on three of the repository's real colour photos
(pipelines/data/asl-colour-4, decoded and resized by TensorFlow as `preprocess` does, rounded to bytes):

  layout.json      every layer with weights, in model order: names, shapes, tensor numbers
                   (the Normalization layer's `count` is left out: nothing reads it)
  meta.json        seed, sizes, node names and channels, largest reference values, weights' SHA-256,
                   and how much the photos' pooled outputs differ (so that the test is not of constants)
  inputs_S.npy     (3,S,S,3) uint8: the backbone's input images
  nodes_S.npy      (3, sum of channels) float32: the global average of every node's output, in node
                   order (the last node's is the features)

EfficientNetB0 is built exactly as `EfficientNetB0(weights="imagenet")` builds it, with the extra
Rescaling Keras adds after the Normalization layer for the published weights (the loading of the
published file is swapped for the generated weights). S: 224, 64 and 45 (odd: TensorFlow's "same"
padding then pads both sides of stride-2 layers, at even sides only after).

Regenerate (TensorFlow CPU, Keras 3; two minutes): python3 scripts/make_mobile_parity_fixture.py [SEED]

The full weights file of one backbone alone, in the published files' Keras 2 layout, from the committed
layout.json (NumPy and h5py only; for benchmarks that need a real-sized file):
  python3 scripts/make_mobile_parity_fixture.py --weights NAME OUT.h5
"""
import hashlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_parity_fixture import ROOT, generated, write_weights  # noqa: E402

SIZES = [224, 64, 45]
PHOTOS = ["pipelines/data/asl-colour-4/test/A/hand1_a_bot_seg_1_cropped.jpeg",
          "pipelines/data/asl-colour-4/test/B/hand1_b_bot_seg_1_cropped.jpeg",
          "pipelines/data/asl-colour-4/test/C/hand1_c_bot_seg_1_cropped.jpeg"]

MOBILENET_NODES = ["expanded_conv_project_BN"] + [
    f"block_{i}_{'add' if i in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15) else 'project_BN'}" for i in range(1, 17)] + ["out_relu"]
EFFICIENT_STAGES = [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 1)]
EFFICIENT_NODES = [f"block{s}{chr(97 + r)}_{'add' if r > 0 else 'project_bn'}" for s, n in EFFICIENT_STAGES for r in range(n)] + ["top_activation"]


def build(name, size):
    import keras
    from keras.src.applications import efficientnet
    from keras.src.models import functional

    if name == "mobilenetv2":
        return keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None, alpha=1.0)
    # The ImageNet graph without the ImageNet file: get_file and load_weights stood in for.
    saved = efficientnet.file_utils.get_file, functional.Functional.load_weights
    efficientnet.file_utils.get_file = lambda *args, **kwargs: "unused"
    functional.Functional.load_weights = lambda self, *args, **kwargs: None
    try:
        return keras.applications.EfficientNetB0(input_shape=(size, size, 3), include_top=False, weights="imagenet")
    finally:
        efficientnet.file_utils.get_file, functional.Functional.load_weights = saved


def set_weights(model, seed, gains=None, calibrate=None):
    """Every layer's weights from the generator, in model order; returns layout, digest and the count.

    A deep network of generated weights loses its input: each BatchNorm's moving variance is not its
    input's, the signal shrinks layer by layer, and at the end every image's features are the same
    to 1e-7 (a parity test on them could not fail for a wrong convolution). So each BatchNorm's
    moving_variance is scaled by a power of two, `gain` in layout.json, that brings it nearest its
    input's mean variance on the photos (`calibrate`, in model order); scaling by 2^gain is exact."""
    import keras

    gains = {} if gains is None else gains
    layout, digest, tensor = [], hashlib.sha256(), 0
    for layer in model.layers:
        if not layer.weights:
            continue
        entry, values = {"name": layer.name, "weights": []}, []
        for w in layer.weights:
            kind = w.path.split("/")[-1]
            # Keras 3 calls a depthwise kernel `kernel`; the published (Keras 2) files `depthwise_kernel`.
            if type(layer).__name__ == "DepthwiseConv2D" and kind == "kernel":
                kind = "depthwise_kernel"
            if kind == "count":
                values.append(np.array(0, dtype="int64"))
                continue
            array = generated(seed, tensor, kind, tuple(w.shape))
            if kind == "moving_variance" and calibrate is not None:
                feed = keras.Model(model.input, layer.input).predict(calibrate, verbose=0).astype("float64")
                actual = feed.reshape(-1, feed.shape[-1]).var(axis=0).mean()
                gains[layer.name] = int(np.round(np.log2(actual / array.astype("float64").mean())))
            gain = gains.get(layer.name, 0) if kind == "moving_variance" else 0
            array = (array.astype("float64") * 2.0 ** gain).astype("float32")
            digest.update(array.astype("<f4").tobytes())
            weight = {"name": kind, "shape": list(array.shape), "tensor": tensor}
            if gain:
                weight["gain"] = gain
            entry["weights"].append(weight)
            values.append(array)
            tensor += 1
        layer.set_weights(values)
        # As Keras's HDF5 loader does: Normalization reads its mean and variance from here on.
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()
        layout.append(entry)
    return layout, digest.hexdigest(), tensor


def photos(size):
    import tensorflow as tf

    images = []
    for path in PHOTOS:
        decoded = tf.io.decode_jpeg(tf.io.read_file(os.path.join(ROOT, path)), channels=3)
        resized = tf.image.resize(tf.cast(decoded, tf.float32)[None], (size, size), method="bilinear").numpy()[0]
        images.append(np.clip(np.round(resized), 0, 255).astype("uint8"))
    return np.stack(images)


def main(seed):
    import keras
    import tensorflow as tf

    for name, nodes in [("mobilenetv2", MOBILENET_NODES), ("efficientnetb0", EFFICIENT_NODES)]:
        out = os.path.join(ROOT, f"Tests/Fixtures/keras-parity-{name}")
        os.makedirs(out, exist_ok=True)
        # The gains, calibrated once at the largest size; the same weights serve every size.
        gains, x = {}, photos(SIZES[0])
        set_weights(build(name, SIZES[0]), seed, gains,
                    calibrate=keras.applications.mobilenet_v2.preprocess_input(x.astype("float32")) if name == "mobilenetv2" else x.astype("float32"))
        meta = {"seed": seed, "sizes": SIZES, "nodes": nodes, "photos": PHOTOS, "tensorflow": tf.__version__, "keras": keras.__version__}
        for size in SIZES:
            keras.backend.clear_session()
            model = build(name, size)
            if name == "efficientnetb0":
                assert model.get_layer("normalization") is not None
                assert any(type(layer).__name__ == "Rescaling" and layer.name != "rescaling" for layer in model.layers), "no ImageNet rescaling"
            layout, digest, tensors = set_weights(model, seed, gains)
            meta.update(weights_sha256=digest, tensors=tensors, node_channels=[int(model.get_layer(n).output.shape[-1]) for n in nodes])
            with open(os.path.join(out, "layout.json"), "w") as f:
                json.dump(layout, f, separators=(",", ":"))
                f.write("\n")
            x = photos(size)
            np.save(os.path.join(out, f"inputs_{size}.npy"), x)
            if name == "mobilenetv2":
                model_input = keras.applications.mobilenet_v2.preprocess_input(x.astype("float32"))
            else:
                model_input = x.astype("float32")
            outputs = keras.Model(model.input, [model.get_layer(n).output for n in nodes]).predict(model_input, verbose=0)
            pooled = [np.asarray(o, dtype="float64").mean(axis=(1, 2)).astype("float32") for o in outputs]
            np.save(os.path.join(out, f"nodes_{size}.npy"), np.concatenate(pooled, axis=1))
            meta[f"nodes_{size}_absmax"] = [float(np.abs(p).max()) for p in pooled]
        with open(os.path.join(out, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        spread = [float(p.std(axis=0).max() / np.abs(p).max()) for p in np.split(np.load(os.path.join(out, "nodes_224.npy")), np.cumsum(meta["node_channels"])[:-1], axis=1)]
        meta["nodes_224_spread"] = spread
        with open(os.path.join(out, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        print(name, {k: meta[k] for k in ("weights_sha256", "tensors")}, "features absmax", [meta[f"nodes_{s}_absmax"][-1] for s in SIZES],
              "spread across photos (largest std / largest value) per node", ["%.2g" % v for v in spread])


def weights_only(name, path):
    folder = os.path.join(ROOT, f"Tests/Fixtures/keras-parity-{name}")
    with open(os.path.join(folder, "layout.json")) as f:
        layout = json.load(f)
    with open(os.path.join(folder, "meta.json")) as f:
        seed = json.load(f)["seed"]
    layers = [{"name": e["name"], "weights": [dict(w, values=(generated(seed, w["tensor"], w["name"], tuple(w["shape"])).astype("float64")
                                                            * 2.0 ** w.get("gain", 0)).astype("float32")) for w in e["weights"]]}
              for e in layout]
    write_weights(path, layers, "keras2")
    print(f"{path}: {name}, {sum(len(e['weights']) for e in layers)} tensors, seed {seed}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--weights"] and len(sys.argv) == 4:
        weights_only(sys.argv[2], sys.argv[3])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)

"""Builds Tests/Fixtures/keras-parity-colour/: what TensorFlow and Keras compute for real colour
photos, for the folder path's parity tests (decode, resize, channel order, features).

From four JPEGs of the committed sample pipelines/data/asl-colour-4 (one per class, test split) and
a PNG made from one of them, with the parity weights of make_parity_fixture.py (the same generator
and seed, from Tests/Fixtures/keras-parity/layout.json and meta.json):

  files.json             the files, in order, and the SHA-256 of each one's tf.io.decode_image(channels=3)
  png-*.png              small PNGs of every kind TensorFlow's decoder handles differently: 16-bit grey,
                         RGBA, grey + alpha, palette, palette with transparency, 1-bit grey, 16-bit RGB
                         (made from the first photo's pixels; Pillow for palettes and low bit depths)
  pngs.json              each PNG and the SHA-256 of its tf.io.decode_image(channels=3)
  wide.png               a 200x120 band of the first photo (not square)
  wide_64.npy            (64,64,3) uint8: tf.image.resize of it to 64x64, rounded (aspect not kept)
  wide_crop_64.npy       (64,64,3) uint8: what image_dataset_from_directory(crop_to_aspect_ratio=True)
                         makes of it: keras.utils smart_resize (centre crop to the target's aspect
                         ratio, then tf.image.resize), rounded
  inputs_64.npy          (5,64,64,3) uint8: tf.image.resize bilinear to 64x64, rounded half to even, clipped
  features_64.npy        (5,2048) float32: Keras's ResNet50 (include_top=False, avg pooling) on
                         preprocess_input (caffe: RGB to BGR, minus the means) of them

Regenerate (TensorFlow CPU, Keras 3, Pillow; under a minute): python3 scripts/make_colour_parity_fixture.py
"""
import hashlib
import io
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_parity_fixture import FIXTURE, ROOT, generated  # noqa: E402

OUT = os.path.join(ROOT, "Tests/Fixtures/keras-parity-colour")
SAMPLE = os.path.join(ROOT, "pipelines/data/asl-colour-4/test")
SIZE = 64


def special_pngs(first):
    """Small PNGs of each kind, from a 24x20 crop of the first photo's decoded pixels."""
    import tensorflow as tf
    from PIL import Image

    rgb = first[40:60, 60:84].numpy()
    grey = rgb.mean(axis=-1).astype("uint16")
    alpha = (np.arange(rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2]) * 7 % 256).astype("uint8")
    made = {
        "png-grey16.png": tf.io.encode_png(tf.constant((grey * 257 + np.arange(grey.size).reshape(grey.shape) % 251)[..., None].astype("uint16"))),
        "png-rgb16.png": tf.io.encode_png(tf.constant(rgb.astype("uint16") * 257 + 129)),
        "png-rgba.png": tf.io.encode_png(tf.constant(np.concatenate([rgb, alpha[..., None]], axis=-1))),
        "png-grey-alpha.png": tf.io.encode_png(tf.constant(np.stack([grey.astype("uint8"), alpha], axis=-1))),
    }
    paths = []
    for name, data in made.items():
        path = os.path.join(OUT, name)
        tf.io.write_file(path, data)
        paths.append(path)
    image = Image.fromarray(rgb)
    palette = image.quantize(colors=16)
    paths.append(os.path.join(OUT, "png-palette.png"))
    palette.save(paths[-1])
    paths.append(os.path.join(OUT, "png-palette-transparent.png"))
    palette.save(paths[-1], transparency=0)
    paths.append(os.path.join(OUT, "png-grey1.png"))
    Image.fromarray(grey.astype("uint8")).convert("1").save(paths[-1])
    return paths


def main():
    import keras
    import tensorflow as tf

    os.makedirs(OUT, exist_ok=True)
    files = []
    for name in ["A", "B", "C", "D"]:
        folder = os.path.join(SAMPLE, name)
        files.append(os.path.join(folder, sorted(os.listdir(folder))[0]))
    # A PNG (RGB, 8 bit) of the first photo's decoded pixels, written by TensorFlow.
    png = os.path.join(OUT, "photo.png")
    first = tf.io.decode_image(tf.io.read_file(files[0]), channels=3)
    tf.io.write_file(png, tf.io.encode_png(first))
    files.append(png)

    with open(os.path.join(FIXTURE, "layout.json")) as f:
        layout = json.load(f)
    with open(os.path.join(FIXTURE, "meta.json")) as f:
        seed = json.load(f)["seed"]
    model = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg")
    for layer, entry in zip(model.layers, layout):
        assert layer.name == entry["name"]
        values = [generated(seed, w["tensor"], w["name"], tuple(w["shape"])) for w in entry["weights"]]
        if values:
            layer.set_weights(values)

    decoded = [tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False) for path in files]
    inputs = np.stack([np.clip(np.round(tf.image.resize(tf.cast(image, tf.float32), (SIZE, SIZE), method="bilinear").numpy()), 0, 255)
                       for image in decoded]).astype("uint8")
    np.save(os.path.join(OUT, f"inputs_{SIZE}.npy"), inputs)
    caffe = keras.applications.resnet50.preprocess_input(inputs.astype("float32"))
    features = model.predict(caffe, verbose=0).astype("float32")
    np.save(os.path.join(OUT, f"features_{SIZE}.npy"), features)
    listing = [{"file": os.path.relpath(path, ROOT), "decoded_sha256": hashlib.sha256(image.numpy().tobytes()).hexdigest(),
                "shape": list(image.shape)} for path, image in zip(files, decoded)]
    with open(os.path.join(OUT, "files.json"), "w") as f:
        json.dump({"files": listing, "size": SIZE, "seed": seed, "features_absmax": float(np.abs(features).max()),
                   "tensorflow": tf.__version__, "keras": keras.__version__}, f, indent=1)
        f.write("\n")
    wide_path = os.path.join(OUT, "wide.png")
    wide = decoded[0][40:160]
    tf.io.write_file(wide_path, tf.io.encode_png(wide))
    wide = tf.cast(tf.io.decode_image(tf.io.read_file(wide_path), channels=3), tf.float32)
    np.save(os.path.join(OUT, f"wide_{SIZE}.npy"), np.clip(np.round(tf.image.resize(wide, (SIZE, SIZE)).numpy()), 0, 255).astype("uint8"))
    from keras.src.backend import tensorflow as tf_backend
    from keras.src.utils import image_utils
    cropped = image_utils.smart_resize(wide, (SIZE, SIZE), interpolation="bilinear", backend_module=tf_backend)
    np.save(os.path.join(OUT, f"wide_crop_{SIZE}.npy"), np.clip(np.round(np.asarray(cropped)), 0, 255).astype("uint8"))
    pngs = special_pngs(decoded[0])
    with open(os.path.join(OUT, "pngs.json"), "w") as f:
        json.dump([{"file": os.path.relpath(path, ROOT),
                    "decoded_sha256": hashlib.sha256(tf.io.decode_image(tf.io.read_file(path), channels=3).numpy().tobytes()).hexdigest()}
                   for path in pngs], f, indent=1)
        f.write("\n")
    print(json.dumps(listing, indent=1))


if __name__ == "__main__":
    main()

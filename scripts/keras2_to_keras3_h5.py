"""Rewrites Keras weights from the Keras 2 HDF5 layout (fixed-length byte-string attributes, weight
names ending in ':0') into the Keras 3 one (variable-length strings, no suffix), the way
shared/fixtures/resnet50-keras-parity/make_parity_fixture.py writes its keras3 style, so the loader can
be tested on both without TensorFlow. Needs h5py and numpy.

Usage: python keras2_to_keras3_h5.py IN.h5 OUT.h5 [LAYER,LAYER,...]
With a layer list, only those layers are written (Tests/Fixtures/keras3-conv1.h5 is
`... weights.h5 keras3-conv1.h5 conv1_conv,conv1_bn`)."""
import sys
import h5py
import numpy as np

source, target = sys.argv[1], sys.argv[2]
keep = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None


def text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
    layers = [text(n) for n in src.attrs["layer_names"] if keep is None or text(n) in keep]
    dst.attrs["layer_names"] = np.array(layers, dtype=h5py.string_dtype())
    dst.attrs["backend"] = "tensorflow"
    dst.attrs["keras_version"] = "3.15.1"
    for layer in layers:
        group = dst.create_group(layer)
        old = [text(n) for n in src[layer].attrs["weight_names"]]
        new = [n[:-2] if n.endswith(":0") else n for n in old]
        group.attrs["weight_names"] = np.array(new, dtype=h5py.string_dtype())
        for o, n in zip(old, new):
            group.create_dataset(n, data=np.asarray(src[layer][o], dtype="float32"))

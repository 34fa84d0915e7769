"""Keras and ONNX Runtime feature-extraction throughput for one of the backbones, on this machine:
the frozen Keras model (include_top=False, average pooling) on its own preprocessing, then ONNX
Runtime on the same graph converted by tf2onnx; each the median of three passes after a warm-up
batch. The peers' side of scripts/compare_backbone.sh.
Usage: python3 scripts/backbone_throughput.py NAME SIZE BATCH N   (NAME: resnet50, mobilenetv2, efficientnetb0)"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

name = sys.argv[1]
size, batch, n = (int(a) for a in sys.argv[2:5])
apps = tf.keras.applications
build, preprocess = {
    "resnet50": (apps.ResNet50, apps.resnet50.preprocess_input),
    "mobilenetv2": (apps.MobileNetV2, apps.mobilenet_v2.preprocess_input),
    "efficientnetb0": (apps.EfficientNetB0, lambda x: x),
}[name]
model = build(include_top=False, weights=None, pooling="avg", input_shape=(size, size, 3))
x = preprocess(np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype(np.float32))

def median_rate(run):
    """Three timed passes over the n images, as compare_backbone.sh runs ours three times: the median
    rate, and all three (this VM's speed moves by a third between passes minutes apart)."""
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        run()
        rates.append(n / (time.perf_counter() - t))
    return sorted(rates)[1], " ".join(f"{r:.2f}" for r in rates)


model.predict(x[:batch], batch_size=batch, verbose=0)
rate, rates = median_rate(lambda: model.predict(x, batch_size=batch, verbose=0))
print(f"keras {name} size={size} batch={batch}: {rate:.2f} img/s (median of {rates})")
try:
    import onnxruntime as ort
    import tf2onnx

    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    session.run(None, {input_name: x[:batch]})

    def passes():
        for i in range(0, n, batch):
            session.run(None, {input_name: x[i:i + batch]})

    rate, rates = median_rate(passes)
    print(f"onnxruntime {name} size={size} batch={batch}: {rate:.2f} img/s (median of {rates})")
except Exception as error:  # noqa: BLE001
    print("onnxruntime skipped:", error)

"""Checks an exported model against predict, image by image: onnx.checker on the file, then ONNX
Runtime on every row of a Kaggle-layout CSV, compared with `predict --model HEAD --csv CSV --json`:
the same top-1 class for every image, and every class's probability within 1e-4.
Usage: python3 scripts/check_onnx.py MODEL.onnx HEAD.sqlite DATA.csv [PREDICT]
PREDICT defaults to .build/release/predict. Needs numpy, onnx and onnxruntime. Exit 0 when all agree."""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4
model_path, head, csv = sys.argv[1:4]
predict = sys.argv[4] if len(sys.argv) > 4 else os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".build/release/predict")

model = onnx.load(model_path)
onnx.checker.check_model(model)
meta = {entry.key: entry.value for entry in model.metadata_props}
classes = meta["classes"].split(",")
labels = [int(label) for label in meta["labels"].split(",")]

with open(csv) as f:
    skip = 1 if f.read(5) == "label" else 0
rows = np.loadtxt(csv, delimiter=",", skiprows=skip, ndmin=2)
images = rows[:, 1:].reshape(-1, 28, 28, 1).astype(np.float32)
session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
ours = session.run(["probabilities"], {"images": images})[0]

result = subprocess.run([predict, "--model", head, "--csv", csv, "--json", "--top", str(len(labels))], capture_output=True, text=True)
if result.returncode != 0:
    sys.exit(f"check_onnx: predict failed: {result.stderr.strip()}")
predictions = json.loads(result.stdout)["predictions"]
if len(predictions) != len(images):
    sys.exit(f"check_onnx: predict gave {len(predictions)} predictions for {len(images)} rows")

worst, disagreements = 0.0, 0
for index, prediction in enumerate(predictions):
    expected = np.zeros(len(labels))
    for entry in prediction["top"]:
        expected[labels.index(entry["label"])] = entry["probability"]
    worst = max(worst, float(np.abs(ours[index] - expected).max()))
    if int(np.argmax(ours[index])) != labels.index(prediction["top"][0]["label"]):
        disagreements += 1
        print(f"row {index + 1}: ONNX Runtime says {classes[int(np.argmax(ours[index]))]}, predict {prediction['top'][0]['class']}")
print(f"{model_path}: opset {model.opset_import[0].version}, {len(model.graph.node)} nodes; {len(images)} images: "
      f"top-1 disagrees on {disagreements}, largest probability difference {worst:.2e} (bar {TOLERANCE:g}); "
      f"onnxruntime {ort.__version__}, onnx {onnx.__version__}")
sys.exit(0 if disagreements == 0 and worst <= TOLERANCE else 1)

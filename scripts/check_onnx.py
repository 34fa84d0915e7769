"""Checks an exported model against predict, image by image: onnx.checker on the file, then ONNX
Runtime on every image, compared with `predict --model HEAD --json`: the same top-1 class for every
image, and every class's probability within 1e-4.
DATA is a Kaggle-layout CSV for a model of grey originals (Sign MNIST), whose rows go to both; or,
for a model that takes RGB at its input size, a folder of PNGs at that size (what `preprocess
--export DIR` writes: the resized pixels), each given to ONNX Runtime as it is and to predict as a
file (whose resize from S to S changes nothing).
Usage: python3 scripts/check_onnx.py MODEL.onnx HEAD.sqlite DATA.csv|PNG-FOLDER [PREDICT]
PREDICT defaults to .build/release/predict. Needs numpy, onnx and onnxruntime (and pillow for a
folder). Exit 0 when all agree."""
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

session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
if os.path.isdir(csv):
    from PIL import Image
    files = sorted(os.path.join(csv, name) for name in os.listdir(csv) if name.endswith(".png"))
    if not files:
        sys.exit(f"check_onnx: no PNG files in {csv}")
    pictures = [np.asarray(Image.open(name).convert("RGB"), dtype=np.float32) for name in files]
    if any(list(picture.shape) != dims for picture in pictures):
        sys.exit(f"check_onnx: the model takes {dims} images; {csv} holds {sorted({picture.shape for picture in pictures})}")
    images = np.stack(pictures)
    arguments = files
else:
    with open(csv) as f:
        skip = 1 if f.read(5) == "label" else 0
    rows = np.loadtxt(csv, delimiter=",", skiprows=skip, ndmin=2)
    images = rows[:, 1:].reshape(-1, 28, 28, 1).astype(np.float32)
    arguments = ["--csv", csv]
ours = np.concatenate([session.run(["probabilities"], {"images": images[start:start + 64]})[0] for start in range(0, len(images), 64)])

result = subprocess.run([predict, "--model", head, "--json", "--top", str(len(labels))] + arguments, capture_output=True, text=True)
if result.returncode != 0:
    sys.exit(f"check_onnx: predict failed: {result.stderr.strip()}")
predictions = json.loads(result.stdout)["predictions"]
if len(predictions) != len(images):
    sys.exit(f"check_onnx: predict gave {len(predictions)} predictions for {len(images)} images")

worst, disagreements = 0.0, 0
for index, prediction in enumerate(predictions):
    expected = np.zeros(len(labels))
    for entry in prediction["top"]:
        expected[labels.index(entry["label"])] = entry["probability"]
    worst = max(worst, float(np.abs(ours[index] - expected).max()))
    if int(np.argmax(ours[index])) != labels.index(prediction["top"][0]["label"]):
        disagreements += 1
        print(f"{prediction['input']}: ONNX Runtime says {classes[int(np.argmax(ours[index]))]}, predict {prediction['top'][0]['class']}")
print(f"{model_path}: opset {model.opset_import[0].version}, {len(model.graph.node)} nodes; {len(images)} images: "
      f"top-1 disagrees on {disagreements}, largest probability difference {worst:.2e} (bar {TOLERANCE:g}); "
      f"onnxruntime {ort.__version__}, onnx {onnx.__version__}")
sys.exit(0 if disagreements == 0 and worst <= TOLERANCE else 1)

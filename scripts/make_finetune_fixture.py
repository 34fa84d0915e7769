"""Builds the committed fine-tuning fixture in Tests/Fixtures/keras-finetune/: one step of plain SGD
on conv5 and a dense head, as Keras computes it, for the Swift tests to repeat.

The backbone's weights are the parity fixture's generated ones (see make_parity_fixture.py; the
Swift tests regenerate them bit for bit). The step:

  maps    = Keras's conv4_block6_out for the parity fixture's four images at 64x64 (4x4x1024 each),
            rounded to float16 as extract --keep stores them
  pooled  = GlobalAveragePooling(conv5 blocks 1-3 (maps))       BatchNorm frozen: training=False
  z       = (pooled - mean) / deviation                         fixed, as the head's standardization
  p       = softmax(relu(z W1 + b1) W2 + b2)                    no dropout
  loss    = mean cross-entropy over the four images
  then SGD (learning rate LR, no momentum) on every conv5 kernel and bias and the head's weights.

Committed (small): maps_64.npy (4,4,4,1024) float32, head_w1.npy (2048,8), head_b1.npy (8,),
head_w2.npy (8,3), head_b2.npy (3,), standardization.npy (2,2048) (mean, deviation), and step.json:
the labels (class indices), the learning rate, the loss, and for every trained tensor its shape and
the change SGD made at 256 seeded positions (all of them for the head's biases).

Regenerate (TensorFlow CPU, Keras 3; half a minute):
  python3 scripts/make_finetune_fixture.py [OUT]
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity_fixture as parity  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests/Fixtures/keras-finetune")
LR = 0.5
SAMPLES = 256


def main(out):
    import keras
    import tensorflow as tf

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(parity.FIXTURE, "meta.json")) as f:
        meta = json.load(f)
    model = keras.applications.ResNet50(include_top=False, weights=None, pooling=None)
    tensor = 0
    for layer in model.layers:
        values = []
        for w in layer.weights:
            values.append(parity.generated(meta["seed"], tensor, w.path.split("/")[-1], tuple(w.shape)))
            tensor += 1
        if values:
            layer.set_weights(values)

    x = np.load(os.path.join(parity.FIXTURE, "inputs_64.npy")).astype("float32")
    caffe = keras.applications.resnet50.preprocess_input(x)
    bottom = keras.Model(model.input, model.get_layer("conv4_block6_out").output)
    maps = bottom.predict(caffe, verbose=0).astype("float16").astype("float32")
    # The layers above the cut, as the fine-tuning guide builds them: a model from the cut's output.
    top = keras.Model(model.get_layer("conv4_block6_out").output, model.get_layer("conv5_block3_out").output)

    rng = np.random.default_rng(7)
    pooled = tf.reduce_mean(top(maps, training=False), axis=[1, 2]).numpy()
    mean = pooled.mean(axis=0).astype("float32")
    deviation = (pooled.std(axis=0) + 0.25).astype("float32")
    w1 = (rng.uniform(-1, 1, (2048, 8)) * 0.05).astype("float32")
    b1 = (rng.uniform(-1, 1, 8) * 0.1).astype("float32")
    w2 = (rng.uniform(-1, 1, (8, 3)) * 0.5).astype("float32")
    b2 = (rng.uniform(-1, 1, 3) * 0.1).astype("float32")
    classes = sorted(set(meta["labels"]))
    labels = np.array([classes.index(label) for label in meta["labels"]])

    head = [tf.Variable(v) for v in (w1, b1, w2, b2)]
    conv = [w for w in top.trainable_weights if "_conv" in w.path]
    assert len(conv) == 2 * 10, [w.path for w in conv]  # 10 convolutions in conv5 (4 + 3 + 3), a kernel and a bias each
    with tf.GradientTape() as tape:
        features = tf.reduce_mean(top(maps, training=False), axis=[1, 2])
        z = (features - mean) / deviation
        hidden = tf.nn.relu(tf.matmul(z, head[0]) + head[1])
        logits = tf.matmul(hidden, head[2]) + head[3]
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    variables = conv + head
    before = [np.array(v.numpy(), dtype=np.float32) for v in variables]
    gradients = tape.gradient(loss, variables)
    keras.optimizers.SGD(learning_rate=LR).apply(gradients, variables)

    step = {"labels": labels.tolist(), "classes": classes, "learning_rate": LR, "loss": float(loss),
            "tensorflow": tf.__version__, "keras": keras.__version__, "tensors": []}
    names = [v.path.replace("/", ".") for v in conv] + ["head.w1", "head.b1", "head.w2", "head.b2"]
    for name, variable, old in zip(names, variables, before):
        new = np.array(variable.numpy(), dtype=np.float32)
        delta = (new.astype(np.float64) - old.astype(np.float64)).ravel()
        count = delta.size
        index = np.arange(count) if count <= SAMPLES else np.sort(rng.choice(count, SAMPLES, replace=False))
        step["tensors"].append({"name": name, "shape": list(old.shape), "largest_change": float(np.abs(delta).max()),
                                "index": index.tolist(), "change": delta[index].tolist()})
    np.save(os.path.join(out, "maps_64.npy"), maps)
    for name, value in [("head_w1", w1), ("head_b1", b1), ("head_w2", w2), ("head_b2", b2)]:
        np.save(os.path.join(out, f"{name}.npy"), value)
    np.save(os.path.join(out, "standardization.npy"), np.stack([mean, deviation]))
    with open(os.path.join(out, "step.json"), "w") as f:
        json.dump(step, f, separators=(",", ":"))
        f.write("\n")
    print(f"loss {float(loss):.6f}; {len(step['tensors'])} tensors; largest change {max(t['largest_change'] for t in step['tensors']):.3g}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else OUT)

"""Trains the notebook's Keras head on a SignTransfer features.sqlite, with the same recipe as
`train`: Dense(hidden, relu) + Dropout per hidden layer, Dense(classes, softmax), Adam (Keras
defaults), sparse categorical cross-entropy, a validation split stratified by class taken from train,
early stopping on val_loss with the best weights restored, and (STANDARDIZE zscore, the default, as
`train --standardize zscore`) inputs z-scored per dimension with the mean and standard deviation of
the rows trained on, the deviation floored at 1% of their root mean square; `none` feeds them raw, as
the notebook did; SCHEDULE cosine (the default, as `train --schedule cosine`: CosineDecay to zero over
all the epochs' steps) or constant. Prints the test accuracy and the time the epochs took (fit alone,
data in memory).
Usage: python keras_head.py FEATURES.sqlite [EPOCHS PATIENCE HIDDEN DROPOUT BATCH VALIDATION SEED STANDARDIZE SCHEDULE]"""
import os, sqlite3, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import keras

path = sys.argv[1]
args = sys.argv[2:] + [None] * 9
epochs = int(args[0] or 30); patience = int(args[1] or 5); hidden = [int(h) for h in (args[2] or "256").split(",") if h]
dropout = float(args[3] or 0.5); batch = int(args[4] or 64); validation = float(args[5] or 0.1); seed = int(args[6] or 0)
standardize = args[7] or "zscore"
schedule = args[8] or "cosine"
keras.utils.set_random_seed(seed)

db = sqlite3.connect(path)
rows = db.execute("SELECT split, label, vector FROM features ORDER BY id").fetchall()
x = {s: np.array([np.frombuffer(v, "<f4") for sp, _, v in rows if sp == s]) for s in ("train", "test")}
y = {s: np.array([l for sp, l, _ in rows if sp == s]) for s in ("train", "test")}
classes = sorted(set(y["train"].tolist()))
index = {c: i for i, c in enumerate(classes)}
yi = {s: np.array([index.get(l, -1) for l in y[s]]) for s in y}

rng = np.random.default_rng(seed)
val = []
for c in range(len(classes)):
    members = np.flatnonzero(yi["train"] == c)
    rng.shuffle(members)
    val += members[: min(int(round(len(members) * validation)), max(len(members) - 1, 0))].tolist()
val = np.array(sorted(val), dtype=int)
train = np.setdiff1d(np.arange(len(yi["train"])), val)
if standardize == "zscore":
    fitted = x["train"][train].astype(np.float64)
    mean, deviation = fitted.mean(0), fitted.std(0)
    deviation = np.maximum(deviation, 1e-2 * np.sqrt(np.mean(deviation ** 2)))
    x = {s: ((v - mean) / deviation).astype("float32") for s, v in x.items()}

layers = [keras.Input((x["train"].shape[1],))]
for h in hidden:
    layers += [keras.layers.Dense(h, activation="relu"), keras.layers.Dropout(dropout)]
layers += [keras.layers.Dense(len(classes), activation="softmax")]
model = keras.Sequential(layers)
rate = 0.001
if schedule == "cosine":
    rate = keras.optimizers.schedules.CosineDecay(0.001, decay_steps=epochs * ((len(train) + batch - 1) // batch))
model.compile(optimizer=keras.optimizers.Adam(learning_rate=rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)] if patience > 0 and len(val) else []
start = time.perf_counter()
history = model.fit(x["train"][train], yi["train"][train], epochs=epochs, batch_size=batch,
                    validation_data=(x["train"][val], yi["train"][val]) if len(val) else None, callbacks=callbacks, verbose=0)
seconds = time.perf_counter() - start
predicted = np.argmax(model.predict(x["test"], batch_size=1024, verbose=0), axis=1)
accuracy = float(np.mean(predicted == yi["test"])) if len(yi["test"]) else float("nan")
print(f"keras head ({standardize}, {schedule}): {len(history.history['loss'])} epochs in {seconds:.2f} s, test accuracy {accuracy:.4f}")

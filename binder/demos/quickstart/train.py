"""A tiny "training run": fits y = a*x + b by gradient descent, streams progress, and keeps
the model and its metrics as artifacts of the job."""

import json
import os
import random
import sys
import time

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
lr = float(os.environ.get("LR", "0.05"))
random.seed(0)
data = [(x / 10, 3 * x / 10 + 1 + random.gauss(0, 0.1)) for x in range(50)]
a = b = 0.0
for epoch in range(1, epochs + 1):
    grad_a = sum(2 * (a * x + b - y) * x for x, y in data) / len(data)
    grad_b = sum(2 * (a * x + b - y) for x, y in data) / len(data)
    a, b = a - lr * grad_a, b - lr * grad_b
    loss = sum((a * x + b - y) ** 2 for x, y in data) / len(data)
    print(f"epoch {epoch:3d}  loss {loss:.4f}", flush=True)
    time.sleep(0.1)

out = os.environ.get("JOB_ARTIFACTS_DIR", ".")
with open(os.path.join(out, "model.json"), "w") as fh:
    json.dump({"a": a, "b": b}, fh)
with open(os.path.join(out, "metrics.json"), "w") as fh:
    json.dump({"loss": loss, "epochs": epochs, "lr": lr}, fh)
print(f"model: y = {a:.3f} x + {b:.3f}", file=sys.stderr)

"""Logistic regression with numpy on a synthetic two-class problem.

Streams its progress, reports loss and accuracy per epoch as metrics (plotted live in the
job's Metrics tab and under the cell), and keeps the model (model.npz) and its final metrics
(metrics.json) as artifacts of the job. Run: python train.py --epochs 40 --lr 0.1
"""

import argparse
import json
import os
import time

import numpy as np

from jupyter_jobs import metrics  # writes to $JOB_METRICS_FILE; does nothing outside a job

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=40)
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

rng = np.random.default_rng(args.seed)
n = 2000
x = np.concatenate([rng.normal(-1.0, 1.0, (n // 2, 2)), rng.normal(1.0, 1.0, (n // 2, 2))])
y = np.concatenate([np.zeros(n // 2), np.ones(n // 2)])
w, b = np.zeros(2), 0.0

for epoch in range(1, args.epochs + 1):
    p = 1 / (1 + np.exp(-(x @ w + b)))
    w -= args.lr * x.T @ (p - y) / n
    b -= args.lr * float(np.mean(p - y))
    loss = float(-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))
    metrics.log(step=epoch, loss=loss, accuracy=float(np.mean((p > 0.5) == y)), total_steps=args.epochs)
    if epoch % 5 == 0 or epoch == 1:
        print(f"epoch {epoch:3d}  loss {loss:.4f}", flush=True)
    time.sleep(0.05)

accuracy = float(np.mean(((x @ w + b) > 0) == y))
out = os.environ.get("JOB_ARTIFACTS_DIR", ".")
np.savez(os.path.join(out, "model.npz"), w=w, b=b)
with open(os.path.join(out, "metrics.json"), "w") as fh:
    json.dump({"epochs": args.epochs, "lr": args.lr, "loss": loss, "accuracy": accuracy}, fh)
print(f"accuracy {accuracy:.3f}")

"""AIS on a conv model (issue 44): where the time of `evaluate --ais` goes on --architecture conv at the
smallest settings (T = 5, C = 2, L = 1, 2 test images, no BDMC), compile apart from run, and the exact
grid's comparison of the same 2 images (Dz = 2), the part that took minutes.

    .venv/bin/python bench/ais_conv.py     (or as a stage of make bench)
"""

import json
import shutil
import time
from pathlib import Path

from aevb import pipeline
from aevb.config import Config
from aevb.evaluation import ais, exact

RUN = Path("bench/results/runs/ais-conv")


def measure(images=2):
    """{"train_seconds", "ais": {T: {"first_call_seconds", "second_call_seconds"}}, "exact": {...}} on a conv
    model trained 1 epoch on 500 MNIST images (its posteriors broad: the grid's worst case)."""
    shutil.rmtree(RUN, ignore_errors=True)
    began = time.perf_counter()
    pipeline.train(Config(architecture="conv", epochs=1, n_train=500, n_test=100, log_px_every=0), RUN,
                   progress=False)
    out = {"train_seconds": time.perf_counter() - began, "images": images, "ais": {}}
    run = pipeline.load(RUN)
    x = run.split.x_test[:images]
    for steps in (5, 20):
        settings = ais.Settings(steps=steps, chains=2, leapfrog=1, pilot_chains=2, images=images, bdmc=0)
        seconds = []
        for _ in range(2):  # the first call compiles, the second runs
            began = time.perf_counter()
            ais.ais_per_image(run.net, run.params, x, settings, run.config.latent_dim)
            seconds.append(time.perf_counter() - began)
        out["ais"][steps] = {"first_call_seconds": seconds[0], "second_call_seconds": seconds[1]}
    began = time.perf_counter()
    _, stats = exact.log_px(run.net, run.params["decoder"], x)
    out["exact"] = {"seconds": time.perf_counter() - began, "points": stats["points"], "gflop": stats["flops"] / 1e9}
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))

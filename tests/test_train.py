import json
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from aevb import data, train
from aevb.config import Config


def _same(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


@pytest.fixture(scope="module")
def debug_data(mnist):
    return data.load_binarized_mnist(debug=True)


def test_a_few_epochs_raise_the_elbo(debug_data, tmp_path):
    config = Config(debug=True, epochs=30, batch_size=20)
    result = train.train(config, tmp_path / "run", progress=False, datasets=debug_data)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == list(range(1, 31))
    assert rows[-1]["train_elbo"] > rows[0]["train_elbo"] + 50  # from about -540 to about -200
    assert rows[-1]["test_elbo"] > rows[0]["test_elbo"] + 50
    assert result["status"] == "done"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 30 and summary["images_per_second"] > 0


def test_same_seed_same_parameters_bit_for_bit(debug_data, tmp_path):
    config = Config(debug=True, epochs=3, batch_size=20)
    a = train.train(config, tmp_path / "a", progress=False, datasets=debug_data)["params"]
    b = train.train(config, tmp_path / "b", progress=False, datasets=debug_data)["params"]
    c = train.train(Config(debug=True, epochs=3, batch_size=20, seed=1), tmp_path / "c", progress=False,
                    datasets=debug_data)["params"]
    assert _same(a, b)
    assert not _same(a, c)


def test_checkpoint_round_trip(debug_data, tmp_path):
    config = Config(debug=True, epochs=2, batch_size=50, latent_dim=3, hidden_dim=7)
    result = train.train(config, tmp_path, progress=False, datasets=debug_data)
    stored, params, opt_state, epoch = train.load_checkpoint(tmp_path)
    assert stored == config and epoch == 2
    assert _same(params, result["params"])
    assert int(opt_state[0].count) == 4  # 2 epochs of 2 steps
    from safetensors import safe_open

    with safe_open(str(tmp_path / train.CHECKPOINT), "np") as f:
        assert f.get_tensor("encoder.hidden.weight").shape == (784, 7)
        assert json.loads(f.metadata()["config"])["latent_dim"] == 3


def test_checkpoint_that_does_not_fit_the_config(debug_data, tmp_path):
    config = Config(debug=True, epochs=1, batch_size=50)
    train.train(config, tmp_path, progress=False, datasets=debug_data)
    with pytest.raises(train.CheckpointError, match="different config"):
        train.load_checkpoint(tmp_path, Config(debug=True, epochs=1, batch_size=50, hidden_dim=400))
    # Weights of another shape under the same config: refused with the tensor named.
    _, params, opt_state, _ = train.load_checkpoint(tmp_path)
    params["decoder"]["out"]["bias"] = params["decoder"]["out"]["bias"][:10]
    train.save_checkpoint(tmp_path, config, params, opt_state, 1)
    with pytest.raises(train.CheckpointError, match="decoder.out.bias"):
        train.load_checkpoint(tmp_path)


def test_truncated_checkpoint_is_a_clear_error(debug_data, tmp_path):
    train.train(Config(debug=True, epochs=1, batch_size=50), tmp_path, progress=False, datasets=debug_data)
    path = tmp_path / train.CHECKPOINT
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(train.CheckpointError, match="damaged or truncated"):
        train.load_checkpoint(tmp_path)


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(debug_data, tmp_path):
    config = Config(debug=True, epochs=2, batch_size=50, checkpoint_every=1)
    train.train(config, tmp_path, progress=False, datasets=debug_data)
    x_train, y_train, x_test, y_test = debug_data
    poisoned = x_train.copy()
    poisoned[3, 5] = np.nan
    with pytest.raises(train.TrainingDiverged, match="epoch 3"):
        train.train(Config(debug=True, epochs=4, batch_size=50, checkpoint_every=1), tmp_path, resume=True,
                    progress=False, datasets=(poisoned, y_train, x_test, y_test))
    _, params, _, epoch = train.load_checkpoint(tmp_path)
    assert epoch == 2 and all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(params))


def _aevb(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "aevb", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_equals_uninterrupted(mnist, tmp_path):
    settings = ["--n-train", "2000", "--n-test", "100", "--epochs", "40", "--checkpoint-every", "5",
                "--runs-dir", str(tmp_path), "--no-progress"]
    whole = _aevb("train", "--name", "whole", *settings)
    assert whole.wait(timeout=300) == 0, whole.stderr.read()

    cut = _aevb("train", "--name", "cut", *settings)
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 7):
        time.sleep(0.02)
    cut.send_signal(signal.SIGINT)
    out, err = cut.communicate(timeout=120)
    assert cut.returncode == 130, err
    assert "Traceback" not in err and "--resume" in out
    _, _, _, epoch = train.load_checkpoint(tmp_path / "cut")
    assert 7 <= epoch < 40  # saved at the epoch the interrupt arrived in, not at a multiple of 5

    resumed = _aevb("train", "--name", "cut", "--resume", *settings)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    _, a, opt_a, _ = train.load_checkpoint(tmp_path / "whole")
    _, b, opt_b, _ = train.load_checkpoint(tmp_path / "cut")
    assert _same(a, b) and _same(opt_a, opt_b)
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [row["epoch"] for row in rows] == list(range(1, 41))

import dataclasses
import json

import jax
import numpy as np
import pytest
from conftest import float64_elbo, float64_log_joint, float64_tree, tiny, train_run
from safetensors import safe_open
from scipy import stats

from aevb import errors
from aevb.data import splits
from aevb.evaluation import bounds
from aevb.model import densities, networks, probability
from aevb.runs import checkpoint, files, records
from aevb.training import trained


def _same(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


def _train(config, run_dir, **kwargs):
    run_dir.mkdir(parents=True, exist_ok=True)
    return train_run(config, run_dir, splits.load(config), progress=False, **kwargs)


@pytest.mark.parametrize("objective", list(probability.OBJECTIVES))
def test_a_few_epochs_raise_the_elbo(tmp_path, objective):
    config = tiny(epochs=15, objective=objective)
    result = _train(config, tmp_path / "run")
    rows = records.read_metrics(tmp_path / "run")
    assert [row["epoch"] for row in rows] == list(range(1, 16))
    assert rows[-1]["train_elbo"] > rows[0]["train_elbo"] + 15  # from about -95 to about -60 nats
    assert rows[-1]["test_elbo"] > rows[0]["test_elbo"] + 15
    assert result["status"] == "done"
    summary = records.read_summary(tmp_path / "run")
    assert summary["epochs"] == 15 and summary["images_per_second"] > 0
    # The curve's test ELBO, one z per image, against the float64 quadrature ELBO of the final encoder's q,
    # within 5 standard errors of a one-sample mean (the variance from the same quadrature).
    x, params = splits.load(config).x_test, result["params"]
    elbo, variance = float64_elbo(params["decoder"], x, networks.get("mlp").encode(params["encoder"], x),
                                  variance=True)
    assert abs(rows[-1]["test_elbo"] - elbo.mean()) < 5 * np.sqrt(variance.sum()) / len(x)
    # And on the same draws (evaluation's fixed key, folded with each chunk's first image), with scipy's
    # float64 densities: the same number up to float32 rounding.
    t, one_sample = float64_tree(params["decoder"]), []
    for start in range(0, len(x), bounds.IMAGE_CHUNK):
        chunk = x[start : start + bounds.IMAGE_CHUNK]
        mean, log_std = networks.get("mlp").encode(params["encoder"], chunk)
        z = np.asarray(densities.sample_diag_gaussian(jax.random.fold_in(bounds.EVAL_KEY, start), mean, log_std,
                                                      (1,)), np.float64)[0]  # (B, 2)
        log_q = stats.norm.logpdf(z, np.asarray(mean, np.float64), np.exp(np.asarray(log_std, np.float64))).sum(-1)
        one_sample.append(np.diag(float64_log_joint(t, np.asarray(chunk, np.float64), z)) - log_q)
    assert rows[-1]["test_elbo"] == pytest.approx(np.concatenate(one_sample).mean(), abs=1e-3)


def test_same_seed_same_parameters_bit_for_bit(tmp_path):
    a = _train(tiny(), tmp_path / "a")["params"]
    b = _train(tiny(), tmp_path / "b")["params"]
    c = _train(tiny(seed=1), tmp_path / "c")["params"]
    assert _same(a, b)
    assert not _same(a, c)


def test_checkpoint_round_trip(tmp_path):
    config = tiny(epochs=2, latent_dim=3, hidden_dim=7)
    result = _train(config, tmp_path)
    stored, params, opt_state, epoch = trained.restore(tmp_path)
    assert stored == config and epoch == 2
    assert _same(params, result["params"])
    # Continuing from the restored state equals training straight through: Adam's state came back too.
    longer = dataclasses.replace(config, epochs=3)
    _train(longer, tmp_path / "straight")
    _train(longer, tmp_path, resume=True)
    assert _same(trained.restore(tmp_path)[1:3], trained.restore(tmp_path / "straight")[1:3])
    with safe_open(str(tmp_path / files.CHECKPOINT), "np") as f:
        assert f.get_tensor("encoder.hidden.weight").shape == (144, 7)
        assert json.loads(f.metadata()["config"])["latent_dim"] == 3


def test_checkpoint_that_does_not_fit(tmp_path):
    config = tiny(epochs=1)
    _train(config, tmp_path)
    # Weights of another shape under the same config: refused with the tensor named.
    _, params, opt_state, _ = trained.restore(tmp_path)
    params["decoder"]["out"]["bias"] = params["decoder"]["out"]["bias"][:10]
    checkpoint.save_checkpoint(tmp_path, config, params, opt_state, 1)
    with pytest.raises(errors.CheckpointError, match="decoder.out.bias"):
        trained.restore(tmp_path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    _train(tiny(epochs=1), tmp_path)
    path = tmp_path / files.CHECKPOINT
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(errors.CheckpointError, match="damaged or truncated"):
        trained.restore(tmp_path)


@pytest.mark.parametrize("garbage", [np.full(1024, 0.5, np.float32).tobytes(), b"\xff" * 4096],
                         ids=["finite-floats", "0xff-bytes"])
def test_a_checkpoint_damaged_in_its_tensors_is_refused_as_damaged(tmp_path, capsys, garbage):
    """4 KB overwritten in the middle of the tensors, with finite floats (which would train on) or with
    0xff bytes (NaN): the stored SHA-256 no longer matches, and --resume says the file is damaged in one
    line, not that the learning rate was too high; the file is left as it is."""
    from conftest import run_cli, tiny_flags

    argv = [*tiny_flags(epochs=1), "--runs-dir", str(tmp_path), "--name", "r", "--no-progress"]
    assert run_cli(capsys, "train", *argv)[0] == 0
    path = tmp_path / "r" / files.CHECKPOINT
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = garbage
    path.write_bytes(bytes(data))
    code, _, err = run_cli(capsys, "train", *argv, "--epochs", "2", "--resume")
    assert code == 1 and "is damaged: its header or tensors do not match the SHA-256" in err, err
    assert "learning-rate" not in err and path.read_bytes() == bytes(data)


def test_checkpoint_of_the_old_format_names_its_version(tmp_path):
    from safetensors.numpy import save_file

    old_config = {"kl": "mc", "n_train": 10000, "latent_dim": 2}  # format 1 had `kl`, no objective
    save_file({"x": np.zeros(1, np.float32)}, str(tmp_path / files.CHECKPOINT),
              metadata={"format": "aevb-checkpoint-1", "config": json.dumps(old_config), "epoch": "100"})
    with pytest.raises(errors.CheckpointError, match="format aevb-checkpoint-1; this aevb reads aevb-checkpoint-3"):
        trained.restore(tmp_path)


def test_a_nan_test_elbo_with_finite_parameters_is_never_saved(tmp_path):
    # The parameters stay finite but the model scores the test set NaN: that checkpoint is not "good".
    config = tiny(epochs=3, checkpoint_every=1)
    split = splits.load(config)
    poisoned = split.x_test.copy()
    poisoned[0, 0] = np.nan
    with pytest.raises(errors.TrainingDiverged, match="epoch 1: .*no checkpoint had been saved"):
        train_run(config, tmp_path, splits.Split(split.x_train, split.y_train, poisoned, split.y_test, split.dataset,
                                              split.description), progress=False)
    assert not files.has_checkpoint(tmp_path)


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny(epochs=2, checkpoint_every=1)
    _train(config, tmp_path)
    split = splits.load(config)
    poisoned = split.x_train.copy()
    poisoned[3, 5] = np.nan
    with pytest.raises(errors.TrainingDiverged, match="epoch 3: .* the checkpoint of epoch 2 .* is kept"):
        train_run(tiny(epochs=4, checkpoint_every=1), tmp_path, splits.Split(
            poisoned, split.y_train, split.x_test, split.y_test, split.dataset, split.description), resume=True,
            progress=False)
    _, params, _, epoch = trained.restore(tmp_path)
    assert epoch == 2 and all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(params))


def test_iwae_training_at_k_1_is_elbo_training(tmp_path):
    elbo = _train(tiny(epochs=2), tmp_path / "elbo")
    iwae = _train(tiny(epochs=2, objective="iwae", num_samples=1), tmp_path / "iwae")
    assert _same(elbo["params"], iwae["params"])
    assert records.read_metrics(tmp_path / "elbo")[-1]["train_elbo"] == records.read_metrics(tmp_path / "iwae")[-1][
        "train_elbo"]
    k5 = _train(tiny(epochs=2, objective="iwae", num_samples=5), tmp_path / "iwae5")
    assert not _same(elbo["params"], k5["params"])


def test_a_fall_of_the_training_objective_after_warm_up_is_said_and_nothing_less():
    """stability.fall on rows of metrics.jsonl: a last epoch more than 5 nats per image below the best epoch after
    the KL warm-up is named with both numbers and epochs; a fall within 5 nats, a best epoch inside the warm-up (whose
    objective weighs the KL less), a last epoch still in it, and a non-finite epoch are not a fall."""
    from aevb.training import stability

    def rows(values, first=1):
        return [{"epoch": first + i, "train_elbo": v} for i, v in enumerate(values)]

    said = stability.fall(rows([-200.0, -160.0, -150.0, -149.7, -197.1]), warmup=0)
    assert "fell from -149.70 nats/image (epoch 4) to -197.10 in the last epoch (5)" in said
    assert stability.fall(rows([-200.0, -150.0, -154.9]), warmup=0) is None  # 4.9 nats: noise of an epoch
    assert stability.fall(rows([-90.0, -120.0, -130.0, -131.0]), warmup=2) is None  # the best in the warm-up
    assert "(epoch 3)" in stability.fall(rows([-90.0, -120.0, -125.0, -131.0]), warmup=2)
    assert stability.fall(rows([-150.0, -140.0, -160.0]), warmup=3) is None  # the last epoch still warming up
    assert stability.fall(rows([-150.0, -160.0, float("nan")]), warmup=0) is None  # NaN stops training, said apart
    assert stability.fall(rows([-150.0]), warmup=0) is None


def test_training_that_ends_below_its_best_says_so_when_it_finishes(tmp_path, capsys):
    """A real run resumed for one epoch whose metrics.jsonl holds an earlier epoch 50 nats above the last: the loop
    warns on stderr, naming the run and both epochs, as `aevb train` would print it; the run is trained all the same."""
    config = tiny(epochs=2)
    _train(config, tmp_path)
    rows = records.read_metrics(tmp_path)
    rows[0]["train_elbo"] = rows[-1]["train_elbo"] + 50.0  # as if the first epoch had been far better
    records.write_metrics(tmp_path, rows)
    capsys.readouterr()
    result = _train(dataclasses.replace(config, epochs=3), tmp_path, resume=True)
    err = capsys.readouterr().err
    assert result["epoch"] == 3 and f"aevb: warning: {tmp_path}: the training objective fell from" in err, err
    assert "(epoch 1)" in err and "in the last epoch (3)" in err

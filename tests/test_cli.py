import dataclasses
import io
import json
import shutil

import matplotlib.image
import pytest
import tbparse
from conftest import REPORTED, run_cli, tiny, tiny_flags

from aevb import arguments, cli
from aevb.config import Config
from aevb.runs import files, records
from aevb.training import trained


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "0"],
    ["train", "--epochs", "-3"],
    ["train", "--epochs", "2.5"],
    ["train", "--batch-size", "0"],
    ["train", "--batch-size", "10001"],
    ["train", "--debug", "--batch-size", "101"],
    ["train", "--debug", "--n-train", "50", "--epochs", "2"],  # no full batch of 100 in 50 images
    ["train", "--learning-rate", "nan"],
    ["train", "--lr", "-1"],
    ["train", "--seed", "-1"],
    ["train", "--seed", str(2**32)],
    ["train", "--n-train", "55000"],
    ["train", "--test-split", "official", "--n-test", "10001"],
    ["train", "--objective", "kl"],
    ["train", "--architecture", "resnet"],
    ["train", "--dataset", "imagenet"],
    ["train", "--no-such-option"],
    ["evaluate", "-k", "0"],
    ["plot", "--pairs", "1,x"],
    ["frobnicate"],
    [],
])
def test_bad_arguments_give_usage_and_exit_2(capsys, tmp_path, argv):
    code, _, err = run_cli(capsys, *argv, *(["--runs-dir", str(tmp_path)] if argv[:1] == ["train"] else []))
    assert code == 2
    assert "usage:" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_every_setting_is_a_flag_with_its_help(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    for field in dataclasses.fields(Config):
        assert "--" + field.name.replace("_", "-") in out
        assert field.metadata["help"].split()[0] in out
    # Flags land in the config, under the field's name.
    values = {"latent_dim": 3, "hidden_dim": 17, "objective": "elbo-analytic-kl", "learning_rate": 0.002, "seed": 7}
    args = arguments.build_parser().parse_args(["train", "--latent-dim", "3", "--hidden-dim", "17", "--objective",
                                          "elbo-analytic-kl", "--lr", "0.002", "--seed", "7"])
    assert cli._settings(args) == values


def test_missing_run_dir_is_one_clear_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", "--runs-dir", str(tmp_path), "--name", "nothing")
    assert code == 1
    assert err.strip().count("\n") == 0 and "does not exist" in err


def test_resume_policy_and_damaged_checkpoints(capsys, tmp_path):
    argv = ["--runs-dir", str(tmp_path), "--name", "r", "--no-progress"]
    code, out, err = run_cli(capsys, "train", *tiny_flags(epochs=2), *argv)
    assert code == 0, err
    # Training again into the same run without --resume or --overwrite loses nothing: refused.
    code, _, err = run_cli(capsys, "train", *tiny_flags(epochs=2), *argv)
    assert code == 1 and "--resume" in err
    # Resuming to fewer epochs than the checkpoint holds is refused; so is another architecture.
    code, _, err = run_cli(capsys, "train", "--resume", "--epochs", "1", *argv)
    assert code == 1 and "already at epoch 2" in err
    code, _, err = run_cli(capsys, "train", "--resume", "--hidden-dim", "10", *argv)
    assert code == 1 and "hidden_dim 32 != 10" in err and err.strip().count("\n") == 0
    # Resuming with only --epochs continues the stored config.
    code, _, err = run_cli(capsys, "train", "--resume", "--epochs", "3", *argv)
    assert code == 0, err
    assert trained.restore(tmp_path / "r")[0] == tiny(epochs=3) and len(records.read_metrics(tmp_path / "r")) == 3
    path = tmp_path / "r" / files.CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    code, _, err = run_cli(capsys, "evaluate", "-k", "2", *argv)
    assert code == 1 and "truncated" in err and "Traceback" not in err
    assert err.strip().count("\n") == 0


def test_overwrite_starts_again_and_drops_the_old_numbers(capsys, tmp_path):
    argv = ["--runs-dir", str(tmp_path), "--name", "r"]
    assert run_cli(capsys, "train", *tiny_flags(epochs=2), "--no-progress", *argv)[0] == 0
    for command in (["evaluate", "--no-progress"], ["plot", "curves"], ["report"]):
        assert run_cli(capsys, *command, *argv)[0] == 0
    assert "test_elbo" in records.read_summary(tmp_path / "r")
    code, _, err = run_cli(capsys, "run", *tiny_flags(epochs=2, hidden_dim=20), "--no-progress", *argv)
    assert code == 1 and "hidden_dim" in err
    assert run_cli(capsys, "train", *tiny_flags(epochs=2, seed=3), "--overwrite", "--no-progress", *argv)[0] == 0
    stored, _, _, epoch = trained.restore(tmp_path / "r")
    assert stored.seed == 3 and epoch == 2
    assert "test_elbo" not in records.read_summary(tmp_path / "r")
    assert not (tmp_path / "r" / files.REPORT).exists() and not (tmp_path / "r" / files.FIGURES).exists()


def _check_tensorboard(run, summary, epochs):
    """The TensorBoard files, read back by tbparse (TensorBoard's own reader), hold metrics.jsonl's curves
    and the summary's numbers and figures."""
    reader = tbparse.SummaryReader(str(run / "tensorboard"))
    scalars = reader.scalars
    for name in ("train_elbo", "test_elbo", "seconds"):
        rows = scalars[scalars.tag == f"epoch/{name}"].sort_values("step")
        want = [(row["epoch"], row[name]) for row in records.read_metrics(run)]
        assert list(rows.step) == [epoch for epoch, _ in want]
        assert list(rows.value) == pytest.approx([value for _, value in want], rel=1e-6)  # float32 on disk
    for name in ("test_elbo", "test_iwae", "test_log_px", "gap_decomposition/test/approximation_gap"):
        value = scalars[scalars.tag == f"summary/{name}"]
        number = summary
        for part in name.split("/"):
            number = number[part]
        assert list(value.step) == [epochs] and value.value.iloc[0] == pytest.approx(number, rel=1e-6)
    # The figures through TensorBoard's own event reader (tbparse decodes images only with TensorFlow).
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0}).Reload()
    kinds = ("samples", "latent", "manifold", "curves", "bounds")
    assert set(events.Tags()["images"]) == {f"figures/{kind}" for kind in kinds}
    for kind in kinds:
        (image,) = events.Images(f"figures/{kind}")
        png = matplotlib.image.imread(io.BytesIO(image.encoded_image_string), format="png")
        drawn = matplotlib.image.imread(run / files.FIGURES / f"{kind}.png")[..., :3]
        assert image.step == epochs and png.shape == drawn.shape and abs(png - drawn).max() < 1 / 255 + 1e-6


def test_run_end_to_end_writes_every_documented_file_and_number(capsys, tmp_path, reported_run):
    """`aevb run` (the session's reported_run, made by that command: conftest.py) writes every documented file
    and number; a second `aevb run` trains and evaluates nothing."""
    run, config = reported_run, tiny(**REPORTED)
    out = (run.parent.parent / "reported-runs.out").read_text()
    wall = float((run.parent.parent / "reported-runs.wall").read_text())
    assert json.loads((run / files.CONFIG).read_text()) == json.loads(config.to_json())
    rows = records.read_metrics(run)
    assert [row["epoch"] for row in rows] == list(range(1, config.epochs + 1))
    assert set(rows[0]) == {"epoch", "train_elbo", "test_elbo", "seconds", "recording_seconds", "tracked"}
    summary = records.read_summary(run)
    documented = {"epochs", "train_elbo_last_epoch", "training_seconds", "seconds_per_epoch", "images_per_second",
                  "recording_seconds",
                  "train_elbo", "train_elbo_se", "test_elbo", "test_elbo_se", "elbo_samples", "test_iwae",
                  "test_iwae_se", "iwae_k", "iwae_seconds", "iwae_samples_per_second", "units", "completion",
                  "answers_demo", "evaluated_epoch", "trained_on", "evaluated_on", "binarization",
                  # Dz = 2: the exact evaluation too
                  "test_log_px", "test_log_px_se", "train_log_px", "train_log_px_se", "log_px_grid", "log_px_accuracy",
                  "log_px_seconds", "log_px_gflop", "test_gap_elbo", "test_gap_elbo_se", "train_gap_elbo",
                  "train_gap_elbo_se", "test_gap_iwae", "bounds_vs_k", "gap_decomposition", "exact_evaluation_seconds",
                  "run_stages"}
    assert set(summary) == documented
    # The profile of the command: each stage timed once, together within the command's own wall time,
    # each holding the parts that summary.json times inside it.
    stages = summary["run_stages"]
    assert set(stages) == set(records.RUN_STAGES) == {"evaluate", "figures", "completion", "answers", "report"}
    assert all(seconds > 0 for seconds in stages.values())
    assert sum(stages.values()) + summary["training_seconds"] + summary["recording_seconds"] <= wall
    assert summary["recording_seconds"] == pytest.approx(sum(row["recording_seconds"] for row in rows))
    assert stages["evaluate"] >= summary["exact_evaluation_seconds"] + summary["iwae_seconds"]
    assert summary["test_log_px"] >= summary["test_iwae"] - 3 * summary["test_iwae_se"]
    assert summary["log_px_accuracy"]["halved_spacing"]["max_abs_change"] < 0.01
    for side in ("test", "train"):  # gap_families: a coupling flow fitted per image to this factorized model
        (other,) = summary["gap_decomposition"][side]["other_families"]
        assert other["posterior"] == "coupling:2" and other["gain_over_gaussian_q_star"] > -1e-3
    assert "test gap against coupling:2's (another family) q* on 100 images" in out
    from aevb.protocols import reproduce  # a protocol's page reads the same summary: its keys are these

    test_gaps = summary["gap_decomposition"]["test"]
    assert reproduce.gaps_of(summary)["approximation_gap_own"] == (test_gaps["approximation_gap"],
                                                                   test_gaps["approximation_gap_se"])
    assert "q*_F coupling:2&#x27;s (fitted to this model) (SVI), first 100 images" in (run / files.REPORT).read_text()
    per_image = records.read_per_image(run)
    assert set(per_image) == {"train_elbo", "test_elbo", "test_iwae", "test_log_px", "train_log_px"}
    assert per_image["test_log_px"].shape == (config.n_test,) and per_image["train_log_px"].shape == (config.n_train,)
    assert summary["epochs"] == config.epochs and summary["iwae_k"] == 10 and summary["elbo_samples"] == 2
    assert summary["test_iwae"] >= summary["test_elbo"] - 3 * summary["test_elbo_se"]
    completion = summary["completion"]["top"]
    assert completion["hidden_pixels"] == 72 and completion["mask"] == "top"  # 6 of the 12 rows of 12 pixels
    for name in ["samples", "latent", "interpolate", "manifold", "curves", "reconstructions", "bounds", "gaps",
                 "posteriors", "complete_top", "complete_top_posterior", "complete_top_trace"]:
        assert (run / files.FIGURES / f"{name}.png").stat().st_size > 5000
        assert (run / files.FIGURES / f"{name}.svg").is_file()
    assert (run / files.REPORT).stat().st_size > 100000
    assert "test ELBO" in out and "nats/image" in out and str((run / files.REPORT).resolve()) in out
    _check_tensorboard(run, summary, config.epochs)
    # A second `aevb run` (on a copy: the session's run is only read) finds the run trained and trains nothing;
    # its checkpoint is untouched.
    shutil.copytree(run, tmp_path / "again")
    argv = ["--runs-dir", str(tmp_path), "--name", "again", "--no-progress"]
    before = (tmp_path / "again" / files.CHECKPOINT).read_bytes()
    code, out, _ = run_cli(capsys, "run", *tiny_flags(**REPORTED), *argv)
    assert code == 0 and f"already trained ({config.epochs} epochs)" in out
    assert (tmp_path / "again" / files.CHECKPOINT).read_bytes() == before
    # Evaluated before: this command did not evaluate, so the evaluation's recorded time is the first run's.
    assert records.read_summary(tmp_path / "again")["run_stages"]["evaluate"] == stages["evaluate"]


def test_data_command_prints_counts(capsys, mnist):
    code, out, _ = run_cli(capsys, "data")
    assert code == 0
    assert "1001  1127   991" in out and "mnist-uint8.npz" in out


def test_complete_and_answers_commands(capsys, tmp_path):
    argv = ["--runs-dir", str(tmp_path), "--name", "r"]
    assert run_cli(capsys, "train", *tiny_flags(), "--no-progress", *argv)[0] == 0
    code, out, err = run_cli(capsys, "complete", "--mask", "bottom", "--index", "7", *argv)
    assert code == 0, err
    assert "#7" in out and "nats" in out
    figures = tmp_path / "r" / files.FIGURES
    for name in ["complete_bottom", "complete_bottom_posterior", "complete_bottom_trace"]:
        assert (figures / f"{name}.png").is_file()
    completion = records.read_summary(tmp_path / "r")["completion"]["bottom"]
    assert completion["index"] == 7 and completion["hidden_pixels"] == 72
    code, _, err = run_cli(capsys, "complete", "--index", "600", *argv)
    assert code == 2 and "from 0 to 599" in err
    code, out, _ = run_cli(capsys, "answers", *argv)
    assert code == 0
    assert out.count("True.") == 2 and out.count("False.") == 3 and "3.9894" in out and "correlation" in out
    code, out, _ = run_cli(capsys, "answers", "--runs-dir", str(tmp_path), "--name", "untrained")
    assert code == 0 and "needs a trained run" in out and "3.9894" in out

import json

import pytest

from aevb import cli, train


def _run(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "0"],
    ["train", "--epochs", "-3"],
    ["train", "--batch-size", "0"],
    ["train", "--batch-size", "10001"],
    ["train", "--debug", "--batch-size", "101"],
    ["train", "--learning-rate", "nan"],
    ["train", "--n-train", "55000"],
    ["train", "--test-split", "official", "--n-test", "10001"],
    ["train", "--no-such-option"],
    ["evaluate", "-k", "0"],
    ["frobnicate"],
    [],
])
def test_bad_arguments_give_usage_and_exit_2(capsys, argv):
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert "usage:" in err and "Traceback" not in err


def test_missing_run_dir_is_one_clear_line(capsys, tmp_path):
    code, _, err = _run(capsys, "evaluate", "--runs-dir", str(tmp_path), "--name", "nothing")
    assert code == 1
    assert err.strip().count("\n") == 0 and "does not exist" in err


def test_truncated_and_mismatched_checkpoints_exit_1(capsys, tmp_path, mnist):
    argv = ["--runs-dir", str(tmp_path), "--name", "r"]
    code, out, err = _run(capsys, "train", "--debug", "--epochs", "2", "--no-progress", *argv)
    assert code == 0, err
    # Training again into the same run without --resume or --overwrite loses nothing: refused.
    code, _, err = _run(capsys, "train", "--debug", "--epochs", "2", "--no-progress", *argv)
    assert code == 1 and "--resume" in err
    # Resuming to fewer epochs than the checkpoint holds is refused.
    code, _, err = _run(capsys, "train", "--debug", "--resume", "--epochs", "1", "--no-progress", *argv)
    assert code == 1 and "already at epoch 2" in err
    # Resuming with another architecture is refused.
    code, _, err = _run(capsys, "train", "--debug", "--resume", "--hidden-dim", "10", "--no-progress", *argv)
    assert code == 1 and "hidden_dim" in err and err.strip().count("\n") == 0
    path = tmp_path / "r" / train.CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    code, _, err = _run(capsys, "evaluate", "--no-progress", "-k", "2", *argv)
    assert code == 1 and "truncated" in err and "Traceback" not in err
    assert err.strip().count("\n") == 0


def test_train_then_evaluate_writes_the_documented_files(capsys, tmp_path, mnist):
    argv = ["--runs-dir", str(tmp_path), "--name", "r"]
    code, out, err = _run(capsys, "train", "--debug", "--epochs", "3", "--batch-size", "50", "--no-progress", *argv)
    assert code == 0, err
    code, out, err = _run(capsys, "evaluate", "--samples", "4", "-k", "20", "--no-progress", *argv)
    assert code == 0, err
    assert "nats/image" in out
    run = tmp_path / "r"
    assert json.loads((run / "config.json").read_text())["epochs"] == 3
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    summary = json.loads((run / "summary.json").read_text())
    for key in ["train_elbo", "test_elbo", "test_elbo_se", "test_iwae", "iwae_k", "training_seconds",
                "images_per_second", "seconds_per_epoch", "elbo_samples"]:
        assert key in summary
    assert summary["iwae_k"] == 20 and summary["elbo_samples"] == 4
    assert summary["test_iwae"] >= summary["test_elbo"] - 3 * summary["test_elbo_se"]


def test_data_command_prints_counts(capsys, mnist):
    code, out, _ = _run(capsys, "data")
    assert code == 0
    assert "1001  1127   991" in out and "mnist-uint8.npz" in out


def test_complete_and_answers_commands(capsys, tmp_path, mnist):
    argv = ["--runs-dir", str(tmp_path), "--name", "r"]
    assert _run(capsys, "train", "--debug", "--epochs", "3", "--batch-size", "50", "--no-progress", *argv)[0] == 0
    code, out, err = _run(capsys, "complete", "--mask", "bottom", "--index", "7", *argv)
    assert code == 0, err
    assert "#7" in out and "nats" in out
    figures = tmp_path / "r" / "figures"
    for name in ["complete_bottom", "complete_bottom_posterior", "complete_bottom_trace"]:
        assert (figures / f"{name}.png").is_file()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["completion"]["bottom"]["index"] == 7
    assert summary["completion"]["bottom"]["hidden_pixels"] == 392
    code, _, err = _run(capsys, "complete", "--index", "100", *argv)
    assert code == 2
    code, out, _ = _run(capsys, "answers", *argv)
    assert code == 0
    assert out.count("True.") == 2 and out.count("False.") == 3 and "3.9894" in out and "correlation" in out


def test_run_resumes_an_unfinished_run_and_refuses_another_config(capsys, tmp_path, mnist):
    argv = ["--runs-dir", str(tmp_path), "--name", "r", "--debug", "--batch-size", "50", "--no-progress"]
    assert _run(capsys, "train", "--epochs", "2", *argv)[0] == 0
    code, _, err = _run(capsys, "run", "--epochs", "2", "--hidden-dim", "20", *argv)
    assert code == 1 and "hidden_dim" in err
    assert _run(capsys, "train", "--epochs", "2", "--overwrite", "--seed", "3", *argv)[0] == 0
    stored, _, _, epoch = train.load_checkpoint(tmp_path / "r")
    assert stored.seed == 3 and epoch == 2
    assert not json.loads((tmp_path / "r" / "summary.json").read_text()).get("test_elbo")

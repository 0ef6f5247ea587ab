"""The main job, `python -m matnet train`, end to end; and the path flags."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import matnet as mn
from matnet import cli
from test_datasets import write_mnist

LAST_LINE = re.compile(r"^test accuracy: (0\.\d{4}|1\.0000)$")


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "matnet", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_train_end_to_end_in_a_subprocess(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    proc = _run("train", "--epochs", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert LAST_LINE.match(lines[-1]), lines[-1]
    assert sum(line.startswith("epoch ") for line in lines) == 2
    assert "epoch 2/2" in proc.stderr  # the progress bar
    model = mn.load_model(out / "model.safetensors")
    (_, _), (x_test, y_test) = mn.datasets.load_digits()
    acc = model.evaluate(x_test, y_test)["accuracy"]
    assert lines[-1] == f"test accuracy: {acc:.4f}"
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["history"]["val_accuracy"]) == 2


def test_default_training_reaches_097_on_digits(tmp_path, capsys, threads):
    # The README's main command, in-process, with its defaults (which run
    # digits on one thread: `threads` restores the count afterwards).
    pytest.importorskip("sklearn")
    assert cli.main(["train", "--out", str(tmp_path), "--no-progress"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert LAST_LINE.match(last)
    assert float(last.split()[-1]) >= 0.97


def test_cnn_trains_on_digits(tmp_path, capsys, threads):
    # --model cnn, shortened to 4 epochs (the full default run reaches a
    # median of 0.997 over seeds 0-4; too slow for the suite).
    pytest.importorskip("sklearn")
    assert cli.main(["train", "--model", "cnn", "--epochs", "4", "--out", str(tmp_path),
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Conv2D(1->32, 3x3, relu)" in out and "(None, 64, 4, 4)" in out
    last = out.strip().splitlines()[-1]
    assert LAST_LINE.match(last) and float(last.split()[-1]) >= 0.9
    model = mn.load_model(tmp_path / "model.safetensors")
    assert type(model.layers[1]).__name__ == "Conv2D"


def test_transformer_trains_on_digits(tmp_path, capsys, threads):
    # --model transformer, shortened to 6 epochs (the full default run reaches
    # a median of 0.975 over seeds 0-4; too slow for the suite).
    pytest.importorskip("sklearn")
    assert cli.main(["train", "--model", "transformer", "--epochs", "6", "--out",
                     str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Residual" in out and "(None, 8, 64)" in out
    last = out.strip().splitlines()[-1]
    assert LAST_LINE.match(last) and float(last.split()[-1]) >= 0.8
    model = mn.load_model(tmp_path / "model.safetensors")
    assert [type(layer).__name__ for layer in model.layers[:3]] == [
        "Reshape", "Dense", "PositionalEmbedding"]


def test_train_on_mnist_files(tmp_path, rng, capsys, threads):
    write_mnist(tmp_path, rng, n_train=50, n_test=20, gz=True)
    code = cli.main(["train", "--data", "mnist", "--data-dir", str(tmp_path), "--epochs", "1",
                     "--hidden", "16", "--threads", "1", "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "784 features" in out and LAST_LINE.match(out.strip().splitlines()[-1])
    assert mn.load_model(tmp_path / "out" / "model.safetensors").layers[0].W.shape == (784, 16)


@pytest.mark.parametrize("args, code, message", [
    (["train", "--data", "mnist"], 2, "--data-dir"),
    (["train", "--data", "mnist", "--data-dir", "/nonexistent-dir"], 1, "not found"),
    (["train", "--val-split", "1.5"], 2, "val-split"),
    (["train", "--label-smoothing", "2"], 2, "label-smoothing"),
])
def test_train_argument_errors(args, code, message, tmp_path, capsys):
    assert cli.main([*args, "--out", str(tmp_path)]) == code
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args", [["train", "--hidden", "a,b"], ["train", "--epochs", "0"],
                                  ["train", "--data", "cifar"], ["fly"]])
def test_argparse_errors_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code == 2


def test_path_flags_print_installed_directories():
    cmake = _run("--cmakedir")
    assert cmake.returncode == 0
    cmake_dir = Path(cmake.stdout.strip())
    assert (cmake_dir / "matnetConfig.cmake").is_file()
    include = _run("--includedir")
    assert include.returncode == 0
    assert (Path(include.stdout.strip()) / "matnet" / "matnet.hpp").is_file()


def test_info_version_and_help(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == mn.__version__
    assert cli.main(["info"]) == 0
    assert "isa:" in capsys.readouterr().out
    assert cli.main([]) == 2
    assert "train" in capsys.readouterr().out


def test_console_script_is_installed():
    script = Path(sys.executable).parent / ("matnet.exe" if os.name == "nt" else "matnet")
    if not script.exists():
        pytest.skip("no matnet console script next to this interpreter")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == mn.__version__

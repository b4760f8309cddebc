"""Bad input: one line naming the bad value and valid choices, exit code 2, nothing written."""

import json

import pytest

from kdzoo.cli import main

BASE = ["distill", "--teacher", "mlp", "--student", "linear", "--data", "digits", "--steps", "2", "--no-progress"]


@pytest.mark.parametrize("args, needle", [
    (["--strategy", "kdd"], "unknown strategy 'kdd'; did you mean 'kd'"),
    (["--strategy", "kd", "--set", "optim.lrr=0.1"], "unknown config key 'optim.lrr'; did you mean 'optim.lr'"),
    (["--strategy", "kd", "--set", "optim.name=adam"], "unknown value for optim.name 'adam'"),
    (["--strategy", "kd", "--set", "strategy.kd.temprature=2"], "unknown config key 'strategy.kd.temprature'"),
    (["--strategy", "kd", "--set", "strategy.kd.alpha=2"], "alpha must be in [0, 1]"),
    (["--strategy", "kd", "--set", "optim.lr=fast"], "optim.lr: expected a number"),
    (["--strategy", "kd", "--set", "strategy.kd.preset=nope"], "unknown config key"),
    (["--strategy", "regression-kd"], "does not support classification"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    code = main(BASE + ["--out", str(tmp_path / "runs")] + args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("kdzoo: error:")
    assert needle in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, needle", [
    (["distill", "--student", "resnet-typo", "--data", "digits"], "unknown student model 'resnet-typo'"),
    (["distill", "--student", "linear", "--data", "digitz"], "unknown dataset 'digitz'; did you mean 'digits'"),
    (["distill", "--student", "linear", "--data", "digits", "--strategy", "kd"], "needs a teacher"),
    (["distill", "--student", "linear", "--data", "imagefolder:/nope"], "is not a directory"),
    (["distill", "--student", "linear", "--data", "cifar10"], "needs --data-root"),
    (["distill", "-c", "/does/not/exist.yaml"], "does not exist"),
    (["distill", "--resume", "/does/not/exist"], "not a kdzoo run directory"),
    (["eval", "/nope.safetensors", "--data", "digits"], "does not exist"),
])
def test_more_bad_inputs(tmp_path, capsys, argv, needle):
    code = main(argv + (["--out", str(tmp_path / "r")] if argv[0] == "distill" and "--resume" not in argv else []))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "r").exists()


def test_yaml_is_data_not_code(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("student: !!python/object/apply:os.system ['echo pwned']\n")
    assert main(["distill", "-c", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_existing_run_dir_is_never_overwritten(tmp_path, capsys):
    args = ["distill", "--student", "linear", "--data", "digits", "--steps", "2", "--no-progress",
            "--out", str(tmp_path), "--name", "r"]
    assert main(args) == 0
    before = (tmp_path / "r" / "summary.json").read_text()
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "r" / "summary.json").read_text() == before


def test_config_file_with_overrides_and_listing(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "student: {name: mlp, kwargs: {hidden: [16]}}\n"
        "teacher: {name: mlp, kwargs: {hidden: [64]}}\n"
        "teacher_train: {epochs: 2}\n"
        "strategy: [{name: kd, params: {temperature: 2.0}}]\n"
        "data: {name: digits, labels_per_class: 5}\n"
        "train: {steps: 4, seeds: [0, 1]}\n")
    code = main(["distill", "-c", str(cfg), "--set", "strategy.kd.alpha=0.5", "--set", "optim.lr=0.01",
                 "--out", str(tmp_path / "runs"), "--name", "x", "--no-progress"])
    assert code == 0
    import yaml

    resolved = yaml.safe_load((tmp_path / "runs" / "x" / "config.yaml").read_text())
    assert resolved["strategy"] == [{"name": "kd", "params": {"temperature": 2.0, "alpha": 0.5,
                                                                   "logit_standardize": False}}]  # full params
    assert "out" not in resolved and "name" not in resolved  # re-runnable anywhere as it is
    assert resolved["optim"]["lr"] == 0.01
    summary = json.loads((tmp_path / "runs" / "x" / "summary.json").read_text())
    assert set(summary["seeds"]) == {"0", "1"} and summary["teacher"]["val"]["acc"] > 50
    assert summary["provenance"]["torch"] and summary["provenance"]["timm"]
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "runs" / "x"), str(tmp_path / "runs" / "x")]) == 0
    assert "x and x are identical: every paired difference is 0 (2/2 seeds)" in capsys.readouterr().out


@pytest.mark.parametrize("cmd", ["strategies", "plugins", "models", "datasets"])
def test_listings(cmd, capsys):
    assert main([cmd]) == 0
    assert capsys.readouterr().out.strip()
    assert main([cmd, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)

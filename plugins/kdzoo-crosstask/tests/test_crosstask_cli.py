"""The label-space mismatch error, conformance, and a CLI run per strategy on ``digits``."""

import json

import pytest

from kdzoo.cli import main
from kdzoo.testing import check_strategy

STRATEGIES = ["class-mapped-kd", "rkd", "sp", "projected-feature", "refilled"]
TINY = ["--threads", "1", "--no-progress", "--set", "teacher_train.epochs=1", "--labels-per-class", "5"]


def distill(tmp_path, name, *args):
    return main(["distill", "--teacher", "mlp", "--student", "mlp", "--steps", "4", *TINY,
                 "--out", str(tmp_path / "runs"), "--name", name, *args])


def teachers() -> set[str]:
    import os

    root = os.path.join(os.environ["KDZOO_CACHE"], "teachers")
    return set(os.listdir(root)) if os.path.isdir(root) else set()


def test_logit_kd_across_label_spaces_is_refused_in_one_line_before_any_training(tmp_path, capsys):
    before = teachers()
    code = distill(tmp_path, "mismatch", "--strategy", "kd", "--data", "digits:digits[5-9]",
                   "--set", "teacher_data=digits:digits[0-4]")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("kdzoo: error: strategy 'kd'")
    assert "teacher has 5 classes" in err and "labels the teacher never saw: ['5', '6', '7', '8', '9']" in err
    assert "digits:digits[0-4]" in err and all(s in err for s in STRATEGIES)
    assert not (tmp_path / "runs" / "mismatch").exists()
    assert teachers() == before  # refused before a teacher was trained for it


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_conforms(name, zoo):
    assert "loss" in check_strategy(name, zoo=zoo)


@pytest.mark.parametrize("name, params", [
    ("rkd", ["--set", "strategy.rkd.layer=-1"]),
    ("sp", []),
    ("projected-feature", []),
    ("projected-feature", ["--set", "strategy.projected-feature.projection=inverted"]),
    ("refilled", ["--set", "strategy.refilled.unlabelled=true"]),
])
def test_cli_run_disjoint_classes(tmp_path, capsys, name, params):
    """Teacher on digits 0-4, student on digits 5-9: only label-space-agnostic strategies apply."""
    assert distill(tmp_path, name, "--strategy", name, "--data", "digits:digits[5-9]",
                   "--set", "teacher_data=digits:digits[0-4]", *params) == 0
    summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
    assert summary["teacher"]["meta"]["classes"] == list("01234")
    assert summary["seeds"]["0"]["test_best"]["acc"] >= 0
    assert "label space differs" in summary["teacher"]["note"]


def test_cli_run_class_mapped_kd_from_the_task_definition(tmp_path):
    """Teacher on the 10 digits, student on their parity: the map comes from ``digits:parity``."""
    assert distill(tmp_path, "mapped", "--strategy", "class-mapped-kd", "--data", "digits:parity",
                   "--set", "teacher_data=digits") == 0
    config = json.loads((tmp_path / "runs" / "mapped" / "summary.json").read_text())
    assert config["teacher"]["meta"]["classes"] == [str(i) for i in range(10)]


def test_class_mapped_kd_teacher_from_another_dataset_inputs_resized(tmp_path):
    """An 8x8 ``digits`` teacher serves a 28x28 ``mnist5k:ge5`` student through an explicit map."""
    args = ["--strategy", "class-mapped-kd", "--data", "mnist5k:ge5", "--set", "teacher_data=digits"]
    args += [f"--set=strategy.class-mapped-kd.map.{d}='{'<5' if d < 5 else '>=5'}'" for d in range(10)]
    assert distill(tmp_path, "resized", *args) == 0
    meta = json.loads((tmp_path / "runs" / "resized" / "summary.json").read_text())["teacher"]["meta"]
    assert meta["input_shape"] == [1, 8, 8]


def test_random_init_teacher_and_probe(tmp_path, capsys):
    from kdzoo_crosstask.probe import main as probe

    common = ["--data", "digits:digits[5-9]", "--teacher", "mlp", "--teacher-data", "digits:digits[0-4]",
              "--labels-per-class", "5", "--threads", "1", "--set", "teacher_train.epochs=1"]
    assert probe(common + ["--json", str(tmp_path / "p.json")]) == 0
    trained = json.loads((tmp_path / "p.json").read_text())
    assert trained["labelled"] == 25 and 0 <= trained["test_acc"] <= 100 and not trained["random_init"]
    capsys.readouterr()
    assert probe(common + ["--set", "teacher_train.random_init=true"]) == 0
    out = capsys.readouterr()
    assert "random initialisation" in out.err and json.loads(out.out)["random_init"] is True
    assert probe(["--data", "digits"]) == 2

"""What a newcomer meets first: a --help that explains every flag, suites to discover, progress and result
lines that say what is training, defaults that reach a sensible result, portable run names, warnings about
a useless teacher."""

from __future__ import annotations

import argparse
import re
from types import SimpleNamespace

import pytest
import torch

import kdzoo
from kdzoo.cli import _parser, main
from kdzoo.config import make_config
from kdzoo.data import use_streaming
from kdzoo.data.stream import AUTO_MEMORY_BYTES
from kdzoo.train.runs import default_name
from kdzoo.train.teacher import below_ce_note, chance_accuracy, near_chance_note

FLAGS_WITHOUT_VALUE = (argparse._StoreTrueAction, argparse._HelpAction, argparse._VersionAction)


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_of_every_command_has_help_and_every_optional_value_its_default():
    for name, sub in subparsers(_parser({})).items():
        for action in sub._actions:
            assert action.help, f"kdzoo {name} {action.option_strings or action.dest}: no help"
            takes_value = action.option_strings and not isinstance(action, FLAGS_WITHOUT_VALUE) and not action.required
            if takes_value and action.dest != "debug":
                assert "default:" in action.help, f"kdzoo {name} {action.option_strings}: help states no default"


def test_distill_help_ends_with_an_example_and_the_docs_link(capsys):
    assert main(["distill", "--help"]) == 0
    out = capsys.readouterr().out
    assert "example:\n  kdzoo distill --teacher" in out
    assert re.search(r"docs: https://\S+/docs/user-guide\.md#kdzoo-distill", out)
    assert "(default: ce, labels only)" in " ".join(out.split())  # argparse wraps; the words are all there


def test_bench_list_names_the_bundled_suites_and_completion_offers_them(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["suite", "description"]
    assert {"smoke", "default", "fashion"} <= {line.split()[0] for line in out[1:-1]}
    bench = subparsers(_parser({"suites": [{"name": "smoke"}, {"name": "fashion"}]}))["bench"]
    suite = next(a for a in bench._actions if "--suite" in a.option_strings)
    assert suite.completer(prefix="fa") == ["fashion"]


def test_strategies_listing_has_a_header(capsys):
    snapshot = {"strategies": [{"name": "ce", "distribution": "kdzoo", "family": "baseline", "paper": "p"}]}
    assert main.__globals__["cmd_list"](SimpleNamespace(listing=snapshot, command="strategies", json=False)) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["name", "distribution", "family", "paper"]


def test_default_run_names_are_portable_file_names():
    config = make_config({"student": "user:Sequential", "strategy": "at+kd", "data": "imagefolder:/data/my pets"})
    name = default_name(config)
    assert name == "at+kd_user-Sequential_imagefolder-data-my-pets"
    assert re.fullmatch(r"[A-Za-z0-9._+-]+", name)


def test_diabetes_defaults_train_an_mlp_long_enough_and_flags_still_win():
    config = make_config({"data": "diabetes", "teacher": "mlp"})
    assert (config.student.name, config.train.epochs, config.teacher_train.epochs) == ("mlp", 150, 150)
    config = make_config({"data": "diabetes", "student": "linear", "train": {"steps": 20}}, ["teacher_train.epochs=3"])
    assert (config.student.name, config.train.steps, config.train.epochs) == ("linear", 20, 10)
    assert make_config({"data": "digits"}).train.epochs == 10


def test_auto_loader_keeps_file_data_that_fits_in_memory():
    small = SimpleNamespace(x=torch.zeros(100, 1, 28, 28, dtype=torch.uint8), test_x=None)
    big = SimpleNamespace(x=SimpleNamespace(shape=(AUTO_MEMORY_BYTES // 100 + 1, 1, 10, 10), dtype=torch.uint8),
                          test_x=None)
    cfg = make_config({"data": "imagefolder:/somewhere"}).data
    assert not use_streaming(cfg, bundle=small) and use_streaming(cfg, bundle=big)
    assert use_streaming(cfg, user_data=True, bundle=small)  # a user's Dataset may augment its items
    assert use_streaming(make_config({"data": {"name": "imagefolder:/x", "augment": "timm"}}).data, bundle=small)
    assert not use_streaming(make_config({"data": "digits"}).data)


def test_weak_teacher_notes():
    assert chance_accuracy(torch.tensor([0, 0, 0, 1]), [0, 1, 2, 3]) == 75.0
    assert "barely better than chance" in near_chance_note("t", 12.0, 10.0)
    assert near_chance_note("t", 40.0, 10.0) is None
    assert "worse than this student" in below_ce_note("t", 70.0, 80.0)
    assert below_ce_note("t", 90.0, 80.0) is None


@pytest.mark.slow
def test_teacher_training_and_a_cached_teacher_and_one_seed_read_plainly(tmp_path, monkeypatch):
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))
    lines: list[str] = []
    config = {"teacher": "mlp", "student": "linear", "strategy": "ce", "data": "digits", "train": {"steps": 30},
              "teacher_train": {"epochs": 0.1}, "runtime": {"progress": False}, "out": str(tmp_path)}
    kdzoo.distill(config, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert any(re.match(r"teacher mlp: test acc [\d.]+ \(val-selected step", line) for line in lines), lines
    assert not any(line.startswith("seed 0:") for line in lines)
    assert any(line.startswith("warning: teacher mlp is barely better than chance") for line in lines), lines
    assert any("(1 seed: 0)" in line for line in lines) and not any("± 0.00" in line for line in lines)
    lines.clear()
    kdzoo.distill(config, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    cached = next(line for line in lines if "cached" in line)
    assert re.search(r", val acc \d+\.\d\d$", cached), cached


def test_distiller_refusing_a_feature_strategy_on_plain_modules_suggests_only_strategies_it_accepts():
    from torch import nn

    student = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with pytest.raises(kdzoo.ConfigError) as refused:
        kdzoo.Distiller(student, teacher, "at+kd", num_classes=10, input_shape=(1, 8, 8))
    message = str(refused.value)
    assert "student Sequential is a plain module" in message and "pooled-feature" not in message
    suggested = message.rsplit("(", 1)[1].rstrip(")").split(", ")
    assert "kd" in suggested
    for name in suggested:  # every suggestion works on the same modules
        kdzoo.Distiller(student, teacher, name, num_classes=10, input_shape=(1, 8, 8))


def test_a_teacher_too_deep_for_the_input_is_named_as_the_teacher_and_the_message_is_whole(tmp_path, capsys):
    code = main(["distill", "--teacher", "test_convnext", "--student", "lenet5", "--strategy", "kd", "--data", "digits",
                 "--steps", "1", "--no-progress", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("kdzoo: error: teacher model 'test_convnext' cannot run on 1x8x8 inputs"), err
    assert "--set teacher.input_size=[64,64]" in err and err.endswith("the data is resized to it")  # never cut


def test_a_cpu_run_says_so_when_cuda_is_available(monkeypatch):
    from kdzoo.train.runs import unused_gpu_note

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU")
    note = unused_gpu_note(torch.device("cpu"))
    assert note.startswith("note: running on the CPU although CUDA is available (Test GPU)") and "--device auto" in note
    assert unused_gpu_note(torch.device("cuda", 0)) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert unused_gpu_note(torch.device("cpu")) is None


def test_repdistiller_and_mdistiller_spellings_build_the_kdzoo_cifar_models(zoo):
    pytest.importorskip("kdzoo_cifar")
    from kdzoo.config import ModelConfig
    from kdzoo.models.wrapper import create_model

    def params(name: str) -> int:
        model = create_model(ModelConfig(name), num_classes=100, data_shape=(3, 32, 32), data_mean=None, data_std=None,
                             classes=[str(i) for i in range(100)], task="classification", zoo=zoo)
        return sum(p.numel() for p in model.parameters())

    for alias, name in [("wrn_16_1", "wrn-16-1"), ("ShuffleV1", "shufflev1"), ("mobile_half", "mobilenetv2-cifar")]:
        assert zoo.model(alias).name == name
    assert params("wrn_16_1") == params("wrn-16-1")
    assert zoo.model("vgg13") is None  # timm's ImageNet VGG keeps its name


def test_the_run_index_listing_says_one_seed_instead_of_a_zero_spread():
    from kdzoo.cli.result_commands import _spread as spread

    assert spread({"info": '{"seeds": [0]}', "std": 0.0}) == "(1 seed)"
    assert spread({"info": '{"seeds": [0, 1, 2]}', "std": 0.4123}) == "± 0.41"

"""Weights from anywhere (kdzoo.models.weights) and exports that plain timm loads."""

import argparse
import json
import os
import subprocess
import sys

import pytest
import torch

from kdzoo.cli import main
from kdzoo.config import ModelConfig
from kdzoo.models.weights import model_name_from_file, read_weights
from kdzoo.models.wrapper import create_with_weights

CLASSES = [str(i) for i in range(10)]


def build(zoo, cfg, shape=(1, 8, 8)):
    return create_with_weights(cfg, num_classes=10, data_shape=shape, data_mean=[0.3], data_std=[0.4], classes=CLASSES,
                               task="classification", zoo=zoo)


def timm_net(seed, name="test_resnet"):
    import timm

    torch.manual_seed(seed)
    return timm.create_model(name, num_classes=10, in_chans=1)


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_timm_train_checkpoint_loads_ema_by_default_and_plain_weights_when_switched(zoo, tmp_path):
    plain, ema = timm_net(0), timm_net(1)
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    plain(torch.rand(2, 1, 8, 8)).sum().backward()
    optimizer.step()  # momentum buffers: an optimizer state like train.py's
    args = argparse.Namespace(model="test_resnet", in_chans=1, input_size=None, img_size=None, mean=None, std=None,
                              lr=0.1, sched="cosine", model_ema=True, aa=None, mixup=0.8, opt_betas=(0.9, 0.999))
    path = tmp_path / "model_best.pth.tar"  # the name timm's train.py gives it
    torch.save({"epoch": 3, "arch": "test_resnet", "state_dict": plain.state_dict(), "version": 2, "args": args,
                "optimizer": optimizer.state_dict(), "state_dict_ema": ema.state_dict(), "metric": 71.5}, path)

    default = read_weights(path)
    assert same_state(default.state, ema.state_dict()) and "EMA" in default.kind
    assert same_state(read_weights(path, use_ema=False).state, plain.state_dict())
    assert model_name_from_file(path, "teacher checkpoint") == "test_resnet"
    loaded = build(zoo, ModelConfig("test_resnet", checkpoint=str(path)))
    assert same_state(loaded.net.state_dict(), ema.state_dict())
    switched = build(zoo, ModelConfig("test_resnet", checkpoint=str(path), use_ema=False))
    assert same_state(switched.net.state_dict(), plain.state_dict())


def test_ddp_module_prefixes_are_stripped(zoo, tmp_path):
    reference = build(zoo, ModelConfig("lenet5", {"batchnorm": True}), shape=(1, 28, 28))
    path = tmp_path / "ddp.pt"
    torch.save({"module." + k: v for k, v in reference.net.state_dict().items()}, path)
    loaded = build(zoo, ModelConfig("lenet5", {"batchnorm": True}, checkpoint=str(path)), shape=(1, 28, 28))
    assert same_state(loaded.net.state_dict(), reference.net.state_dict())


@pytest.mark.parametrize("safe", [True, False], ids=["model.safetensors", "pytorch_model.bin"])
def test_timm_hf_folder_gives_name_kwargs_and_weights(zoo, tmp_path, safe):
    from timm.models import save_for_hf

    net = timm_net(2, "test_efficientnet").eval()
    save_for_hf(net, str(tmp_path / "hf"), safe_serialization=safe)
    assert model_name_from_file(tmp_path / "hf", "teacher checkpoint") == "test_efficientnet"
    loaded = build(zoo, ModelConfig("test_efficientnet", checkpoint=str(tmp_path / "hf"))).eval()
    x = torch.rand(2, 1, *loaded.meta["input_shape"][1:])
    assert torch.equal(loaded.net(x), net(x))
    # the folder's pretrained_cfg sets input size and normalisation, not the data (8x8, mean 0.3)
    assert loaded.meta["input_shape"] == [1, *net.pretrained_cfg["input_size"][1:]]
    assert loaded.meta["mean"] != [0.3]


# -- student checkpoints are honoured -------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_student(tmp_path_factory):
    """A small mlp trained on digits by kdzoo: its export and its test accuracy."""
    out = tmp_path_factory.mktemp("trained")
    assert main(["distill", "--student", "mlp", "--data", "digits", "--steps", "30", "--no-progress",
                 "--set", "optim.lr=0.01", "--out", str(out), "--name", "r"]) == 0
    summary = json.loads((out / "r" / "summary.json").read_text())
    return out / "r" / "seed-0" / "student.safetensors", summary["seeds"]["0"]["test_best"]["acc"]


def step0_accuracy(monkeypatch):
    """Patch the engine's trainer to record the student's test accuracy before its first step."""
    import kdzoo.train.seed_run
    from kdzoo.bench.metrics import evaluate

    seen = []

    class Step0(kdzoo.train.seed_run.Trainer):
        def __init__(self, ctx, *args, **kwargs):
            b, s = ctx.bundle, ctx.splits
            x, y = (b.test_x, b.test_y) if s.official_test else (b.x, b.y)
            seen.append(evaluate(ctx.student.eval(), x, y, s.test, ctx.task)["acc"])
            ctx.student.train()
            super().__init__(ctx, *args, **kwargs)

    monkeypatch.setattr(kdzoo.train.seed_run, "Trainer", Step0)
    return seen


def test_student_checkpoint_is_loaded_before_training(tmp_path, monkeypatch, trained_student):
    path, accuracy = trained_student
    assert accuracy > 50  # far from chance, so equal accuracies are no coincidence
    seen = step0_accuracy(monkeypatch)
    run = ["distill", "--data", "digits", "--steps", "1", "--no-progress", "--out", str(tmp_path)]
    assert main(run + ["--student", str(path), "--name", "from-file"]) == 0  # the name comes from the export
    assert main(run + ["--student", "mlp", "--name", "scratch"]) == 0
    assert seen[0] == pytest.approx(accuracy) and seen[1] < 50


def write_bad_files(folder):
    """One weights file per way of being wrong, next to a good one (a test_resnet state dict)."""
    good = timm_net(0).state_dict()
    torch.save(good, folder / "good.pth")
    data = (folder / "good.pth").read_bytes()
    (folder / "truncated.pth").write_bytes(data[: len(data) // 2])
    (folder / "corrupt.pth").write_bytes(b"\x80\x02not a pickle" + bytes(range(256)))
    (folder / "random.bin").write_bytes(bytes(range(256)) * 8)
    (folder / "empty.safetensors").write_bytes(b"")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in good.items()}, str(folder / "good.safetensors"))
    data = (folder / "good.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(data[:-64])
    torch.save(timm_net(0, "test_efficientnet").state_dict(), folder / "misfit.pth")

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"conv1.weight": torch.zeros(1), "x": Payload()}, folder / "payload.pth")
    (folder / "folder").mkdir()


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-weights")
    write_bad_files(folder)
    return folder


BAD = [
    ("missing.pth", "does not exist"),
    ("truncated.pth", "cannot be read as a checkpoint (truncated or corrupt"),
    ("corrupt.pth", "cannot be read as a checkpoint (truncated or corrupt"),
    ("random.bin", "not a recognised weights format"),
    ("empty.safetensors", "is empty"),
    ("truncated.safetensors", "cannot be read as a checkpoint (truncated or corrupt"),
    ("misfit.pth", "do not fit"),
    ("payload.pth", "which kdzoo does not unpickle"),
    ("folder", "is a directory without config.json"),
]


@pytest.mark.parametrize("role", ["student", "teacher"])
@pytest.mark.parametrize("file, needle", BAD, ids=[b[0] for b in BAD])
def test_bad_weight_file_is_one_line_exit_2_nothing_written(bad_files, tmp_path, capsys, role, file, needle):
    path = bad_files / file
    other = "student: linear\nstrategy: kd\n" if role == "teacher" else ""
    (tmp_path / "c.yaml").write_text(f"{role}: {{name: test_resnet, checkpoint: {path}}}\n{other}"
                                     "data: digits\ntrain: {steps: 1}\nruntime: {progress: false}\n")
    out = tmp_path / "runs"
    code = main(["distill", "-c", str(tmp_path / "c.yaml"), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2, captured
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"kdzoo: error: {role} checkpoint" if needle != "do not fit"
                                                         else "kdzoo: error: weights"), err
    assert needle in err and str(path) in err, err
    assert "this must never run" not in captured.out and not out.exists()


@pytest.mark.parametrize("file, needle", [("missing.pth", "model file"),
                                          ("truncated.safetensors", "truncated or corrupt"),
                                          ("good.pth", "carries no kdzoo metadata")])
def test_kdzoo_eval_of_a_bad_file_is_one_line(bad_files, capsys, file, needle):
    assert main(["eval", str(bad_files / file), "--data", "digits"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_missing_teacher_file_on_the_command_line_says_it_does_not_exist(tmp_path, capsys):
    code = main(["distill", "--teacher", str(tmp_path / "gone.pth"), "--student", "linear", "--strategy", "kd",
                 "--data", "digits", "--out", str(tmp_path / "runs")])
    assert code == 2 and "teacher checkpoint" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_student_checkpoint_and_an_init_strategy_exclude_each_other(tmp_path, capsys, trained_student):
    code = main(["distill", "--teacher", "mlp", "--student", str(trained_student[0]), "--strategy", "weight-selection",
                 "--data", "digits", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "both set the student's starting weights" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


# -- exports plain timm loads -------------------------------------------------------------------------
TIMM_ONLY = r"""
import importlib.util, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")
                    and "editable" not in type(f).__module__]
sys.path[:] = [p for p in sys.path if p.startswith((sys.prefix, sys.base_prefix))]  # no editable source trees
assert importlib.util.find_spec("kdzoo") is None, "kdzoo is importable"
import timm, torch
from safetensors.torch import load_file, save_file
folder, io = sys.argv[1], sys.argv[2]
model = timm.create_model("local-dir:" + folder, pretrained=True).eval()
cfg = timm.data.resolve_model_data_config(model)
x = load_file(io + "/x.safetensors")["x"]
assert tuple(x.shape[1:]) == tuple(cfg["input_size"]), (x.shape, cfg)
mean, std = torch.tensor(cfg["mean"]).view(1, -1, 1, 1), torch.tensor(cfg["std"]).view(1, -1, 1, 1)
with torch.no_grad():
    y = model((x - mean) / std)
save_file({"y": y}, io + "/y.safetensors")
print(model.pretrained_cfg["label_names"])
"""


def test_export_is_a_folder_plain_timm_loads_with_the_right_preprocessing(zoo, tmp_path):
    from safetensors.torch import load_file, save_file

    from kdzoo.models.wrapper import load_model

    assert main(["distill", "--student", "test_resnet", "--data", "digits", "--steps", "2", "--no-progress",
                 "--out", str(tmp_path), "--name", "r"]) == 0
    seed_dir = tmp_path / "r" / "seed-0"
    model = load_model(seed_dir / "student.safetensors", zoo).eval()  # the existing export still works
    torch.manual_seed(0)
    x = torch.rand(3, *model.meta["input_shape"])
    save_file({"x": x}, str(tmp_path / "x.safetensors"))
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}  # no PYTHONPATH: kdzoo must not be reachable
    done = subprocess.run([sys.executable, "-I", "-c", TIMM_ONLY, str(seed_dir / "student"), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().replace("'", '"')) == CLASSES
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(load_file(str(tmp_path / "y.safetensors"))["y"], expected, atol=1e-5)
    umask = os.umask(0o022)
    os.umask(umask)
    for exported in (seed_dir / "student.safetensors", seed_dir / "student" / "config.json"):
        assert exported.stat().st_mode & 0o777 == 0o666 & ~umask  # ordinary permissions, like every other file
    # kdzoo reads its own folder back, e.g. as a teacher, also in timm's spelling
    again = load_model(seed_dir / "student", zoo).eval()
    with torch.no_grad():
        assert torch.equal(again(x), expected)
    assert main(["distill", "--teacher", f"local-dir:{seed_dir / 'student'}", "--student", "linear", "--strategy", "kd",
                 "--data", "digits", "--steps", "1", "--no-progress", "--out", str(tmp_path), "--name", "t"]) == 0
    assert json.loads((tmp_path / "t" / "summary.json").read_text())["teacher"]["meta"]["name"] == "test_resnet"


# -- a backbone pretrained with another head: new_head, and a teacher fine-tuned from its checkpoint -----
def five_class_checkpoint(tmp_path, seed=3):
    import timm

    torch.manual_seed(seed)
    net = timm.create_model("test_resnet", num_classes=5, in_chans=1)  # "pretrained" on another 5-class task
    path = tmp_path / f"pretrained-{seed}.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_new_head_loads_the_backbone_and_keeps_a_fresh_classifier(zoo, tmp_path):
    pretrained, path = five_class_checkpoint(tmp_path)
    with pytest.raises(Exception) as refused:
        build(zoo, ModelConfig("test_resnet", checkpoint=str(path)))
    message = str(refused.value)
    assert "fc.weight (5, 96) in file vs (10, 96) in model" in message and "set new_head: true" in message
    torch.manual_seed(0)
    loaded = build(zoo, ModelConfig("test_resnet", checkpoint=str(path), new_head=True))
    torch.manual_seed(0)
    fresh = build(zoo, ModelConfig("test_resnet"))
    state, file_state = loaded.net.state_dict(), pretrained.state_dict()
    assert all(torch.equal(state[k], file_state[k]) for k in state if not k.startswith("fc."))
    assert torch.equal(state["fc.weight"], fresh.net.state_dict()["fc.weight"])  # the fresh head, not the file's
    assert loaded.meta["weights_from"].endswith("without its classifier")


def test_new_head_still_refuses_a_body_that_does_not_fit(zoo, tmp_path):
    import timm

    path = tmp_path / "other.pth"
    torch.save(timm.create_model("test_efficientnet", num_classes=5, in_chans=1).state_dict(), path)
    with pytest.raises(Exception, match="do not fit checkpoint 'test_resnet'") as refused:
        build(zoo, ModelConfig("test_resnet", checkpoint=str(path), new_head=True))
    assert "set new_head" not in str(refused.value)


def test_teacher_finetuned_from_a_checkpoint_with_another_head_is_trained_and_keyed_by_the_file(tmp_path, monkeypatch,
                                                                                                 capsys):
    from kdzoo.config import make_config
    from kdzoo.train.teacher import teacher_key

    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))
    _, path = five_class_checkpoint(tmp_path)
    config = tmp_path / "run.yaml"
    config.write_text(f"teacher: {{name: test_resnet, checkpoint: {path}}}\n")
    args = ["distill", "-c", str(config), "--student", "mlp", "--strategy", "kd", "--data", "digits",
            "--steps", "2", "--seeds", "0", "--no-progress", "--out", str(tmp_path / "runs")]
    code = main([*args, "--name", "as-is"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "set new_head: true" in err and not (tmp_path / "runs" / "as-is").exists()

    tuned = [*args, "--set", "teacher_train.finetune=true", "--set", "teacher_train.epochs=2"]
    assert main([*tuned, "--name", "tuned"]) == 0
    out = capsys.readouterr().out
    assert f"training from {path} on the full train split of digits" in out
    teachers = list((tmp_path / "cache" / "teachers").glob("*/teacher.safetensors"))
    assert len(teachers) == 1
    meta = json.loads((tmp_path / "runs" / "tuned" / "summary.json").read_text())
    assert meta["teacher"]["val"]["acc"] > 40  # 10 digit classes (chance: 10%) learnt on the 5-class backbone

    def key(file):
        return teacher_key(make_config({"teacher": {"name": "test_resnet", "checkpoint": str(file)},
                                        "teacher_train": {"finetune": True, "epochs": 2}, "data": {"name": "digits"}}))

    moved = tmp_path / "moved.pth"
    moved.write_bytes(path.read_bytes())
    _, other = five_class_checkpoint(tmp_path, seed=4)
    assert key(moved) == key(path) and key(other) != key(path)  # the content decides, not the path


def test_finetune_without_a_teacher_checkpoint_is_a_one_line_error(tmp_path, capsys):
    code = main(["distill", "--teacher", "mlp", "--student", "mlp", "--data", "digits", "--steps", "2",
                 "--set", "teacher_train.finetune=true", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "teacher_train.finetune fine-tunes teacher.checkpoint, but the teacher has no checkpoint" in err


def test_switches_at_their_default_leave_bench_and_teacher_keys_as_they_were():
    from kdzoo.config import key_dict, make_config

    config = make_config({"teacher": {"name": "test_resnet"}, "student": {"name": "mlp"}, "data": {"name": "digits"}})
    keyed = json.dumps(key_dict(config))
    assert "new_head" not in keyed and "finetune" not in keyed
    on = make_config({"teacher": {"name": "test_resnet", "new_head": True}, "data": {"name": "digits"}})
    assert key_dict(on)["teacher"]["new_head"] is True

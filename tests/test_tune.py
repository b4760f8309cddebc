"""kdzoo tune: Optuna studies on the validation split, the test split never built, tuned suite rows."""

import importlib.util
import json
import struct
import sys

import numpy as np
import pytest
import yaml

from kdzoo.cli import main
from kdzoo.config import make_config
from kdzoo.contract.errors import ConfigError

# `make test` installs the extra (kdzoo[tune]); without it only the tests that need no Optuna run
needs_optuna = pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="pip install 'kdzoo[tune]'")

# a tiny pair on digits: each trial trains 12 steps of an MLP of width 8
TINY = ["--data", "digits", "--teacher", "mlp", "--student", "mlp", "--steps", "12", "--set", "teacher_train.epochs=2",
        "--set", "student.kwargs.hidden=[8]", "--no-progress"]


def tune_cli(*args):
    return main(["tune", *TINY, *args])


@pytest.fixture(scope="module")
def kd_study(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    folder = tmp_path_factory.mktemp("study") / "kd"
    with pytest.MonkeyPatch.context() as patch:  # the session's cache, as kdzoo_isolated gives each test
        patch.setenv("KDZOO_CACHE", str(base / "kdzoo-cache"))
        patch.setenv("KDZOO_INDEX", str(base / "kdzoo-index.sqlite"))
        assert tune_cli("--strategy", "kd", "--trials", "3", "--out", str(folder)) == 0
    return folder


@needs_optuna
def test_tune_on_digits_writes_a_study_with_three_trials_and_its_best_config(kd_study, capsys):
    summary = json.loads((kd_study / "summary.json").read_text())
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 3
    assert [d["name"] for d in summary["search"]] == ["optim.lr", "kd.temperature", "kd.alpha"]
    assert summary["seeds"] == [1000] and summary["sampler"] == "TPESampler(seed=0)"
    assert all(row["reported"] >= 1 for row in summary["rows"])  # validation accuracy reached the pruner
    assert set(json.loads((kd_study / "importances.json").read_text())) == {"optim.lr", "kd.alpha", "kd.temperature"}
    best = yaml.safe_load((kd_study / "best.yaml").read_text())
    config = make_config({k: v for k, v in best.items() if k not in ("out", "name")})
    assert config.optim.lr == pytest.approx(summary["best"]["params"]["optim.lr"])
    assert config.strategy[0].params["temperature"] == pytest.approx(summary["best"]["params"]["kd.temperature"])
    assert config.train.seeds == [1000]
    # a second call with the same request continues the study: it is complete, so nothing runs
    assert tune_cli("--strategy", "kd", "--trials", "3", "--out", str(kd_study)) == 0
    assert json.loads((kd_study / "summary.json").read_text())["trials"]["complete"] + \
        json.loads((kd_study / "summary.json").read_text())["trials"]["pruned"] == 3


@needs_optuna
def test_a_worker_adds_trials_to_a_study_by_its_storage_url(kd_study):
    spec = json.loads((kd_study / "spec.json").read_text())
    assert main(["tune", "--study", spec["name"], "--storage", spec["storage"], "--trials", "4",
                 "--out", str(kd_study)]) == 0
    summary = json.loads((kd_study / "summary.json").read_text())
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 4


@needs_optuna
def test_the_seeded_sampler_proposes_the_same_trials(tmp_path):
    from kdzoo.bench.tune import tune

    config = {"data": "digits", "student": {"name": "mlp", "kwargs": {"hidden": [8]}}, "strategy": "ce",
              "train": {"steps": 4}, "runtime": {"progress": False}}
    quiet = lambda *a, **k: None  # noqa: E731
    runs = [tune(config, trials=2, out=tmp_path / name, sampler_seed=7, log=quiet) for name in ("a", "b")]
    params = [[row["params"] for row in r["rows"]] for r in runs]
    assert params[0] == params[1] and len(params[0]) == 2 and params[0][0] != params[0][1]
    other = tune(config, trials=2, out=tmp_path / "c", sampler_seed=8, log=quiet)
    assert [row["params"] for row in other["rows"]] != params[0]


def _write_idx(path, array):
    dtype = {np.uint8: 0x08}[array.dtype.type]
    path.write_bytes(struct.pack(">HBB", 0, dtype, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.tobytes())


@pytest.fixture
def idx_folder(tmp_path):
    """A Fashion-MNIST-shaped folder of the four IDX files, made from scikit-learn's digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.zeros((len(digits.images), 28, 28), np.uint8)
    images[:, 6:22, 6:22] = np.kron(digits.images, np.ones((2, 2))).astype(np.uint8) * 16
    labels = digits.target.astype(np.uint8)
    for prefix, part in (("train", slice(0, 1400)), ("t10k", slice(1400, None))):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images[part])
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels[part])
    return tmp_path


@needs_optuna
def test_a_tuning_run_never_opens_the_test_files(idx_folder, tmp_path, monkeypatch):
    import kdzoo.data.files as files
    from kdzoo.bench.tune import tune, tuning_data
    from kdzoo.data import load_dataset, make_splits
    from kdzoo.train.runs import prepare
    from kdzoo.zoo.plugins import load_zoo

    zoo = load_zoo()
    config = make_config({"data": {"name": "fashion-mnist", "root": str(idx_folder)}, "strategy": "ce",
                          "student": {"name": "mlp", "kwargs": {"hidden": [8]}}, "train": {"steps": 6},
                          "runtime": {"progress": False}})
    real = make_splits(load_dataset("fashion-mnist", str(idx_folder), zoo), config.data)
    read, real_read = [], files.read_idx

    def guarded(path):
        if "t10k" in path.name:
            raise AssertionError(f"the test split was opened: {path}")
        read.append(path.name)
        return real_read(path)

    monkeypatch.setattr(files, "read_idx", guarded)
    with pytest.raises(AssertionError, match="test split was opened"):  # the guard bites an ordinary run
        prepare(config, zoo)
    read.clear()
    bundle, splits = tuning_data(config, zoo)
    assert sorted(read) == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    assert len(splits.test) == 0 and len(bundle.test_x) == 0 and splits.official_test
    assert np.array_equal(splits.train, real.train) and np.array_equal(splits.val, real.val)
    summary = tune(config, trials=2, out=tmp_path / "study", zoo=zoo, log=lambda *a, **k: None)
    assert summary["trials"]["complete"] == 2


def test_digits_test_rows_are_blanked_and_train_val_unchanged():
    from kdzoo.bench.tune import tuning_data
    from kdzoo.data import load_dataset, make_splits
    from kdzoo.zoo.plugins import load_zoo

    zoo = load_zoo()
    config = make_config({"data": "digits", "strategy": "ce"})
    full = load_dataset("digits", None, zoo)
    real = make_splits(full, config.data)
    bundle, splits = tuning_data(config, zoo)
    assert len(splits.test) == 0 and np.array_equal(splits.train, real.train) and np.array_equal(splits.val, real.val)
    assert bundle.x[real.test].abs().sum() == 0 and full.x[real.test].abs().sum() > 0
    assert (bundle.x[real.train] == full.x[real.train]).all()


SUITE = {
    "name": "tiny-tuned",
    "seeds": [0],
    "tune": {"trials": 2},
    "tasks": [{
        "name": "digits",
        "data": {"name": "digits"},
        "steps": 12,
        "teacher_train": {"epochs": 2},
        "pairs": [{"teacher": {"name": "mlp"}, "student": {"name": "mlp", "kwargs": {"hidden": [8]}}}],
        "strategies": ["ce", {"name": "kd", "params": "tuned"}],
    }],
}


@needs_optuna
def test_a_suite_row_with_tuned_params_runs_at_its_studys_best_trial(tmp_path):
    from kdzoo.bench.suite import run_bench
    from kdzoo.bench.tune_suite import tune_suite

    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    out = tmp_path / "bench"
    quiet = lambda *a, **k: None  # noqa: E731
    with pytest.raises(ConfigError, match=r"kd asks for tuned parameters, .* run: kdzoo tune --suite tiny-tuned"):
        run_bench(str(path), out, progress=False, log=quiet)
    summaries = tune_suite(str(path), out, log=quiet)
    assert [s["study"].split("_")[0] for s in summaries] == ["kd", "ce"]  # ce: the same lr search, same trials
    assert [len(s["rows"]) for s in summaries] == [2, 2]
    assert [d["name"] for d in summaries[1]["search"]] == ["optim.lr"]
    results = run_bench(str(path), out, progress=False, log=quiet)
    rows = {r["variant"]: r for r in results["rows"]}
    assert set(rows) == {"ce", "kd [tuned]", "ce [tuned]"} and all(r["status"] == "ok" for r in rows.values())
    kd = rows["kd [tuned]"]
    assert kd["tuned"]["trials"] == 2 and kd["tuned"]["params"] == summaries[0]["best"]["params"]
    config = yaml.safe_load((out / "cells" / kd["key"] / "config.yaml").read_text())
    assert config["optim"]["lr"] == pytest.approx(summaries[0]["best"]["params"]["optim.lr"])
    assert config["strategy"][0]["params"]["alpha"] == pytest.approx(summaries[0]["best"]["params"]["kd.alpha"])
    written = {r["variant"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert written["kd [tuned]"]["tuned"]["study"] == summaries[0]["study"] and "tuned" not in written["ce"]
    # the tuned row's verdict is against the tuned ce (one seed: the paired difference itself)
    entry = next(e for e in results["summary"] if e["variant"] == "kd [tuned]")
    assert entry["vs_ce"]["mean_diff"] == pytest.approx(kd["test_best_acc"] - rows["ce [tuned]"]["test_best_acc"])


def test_without_optuna_tune_is_one_line_naming_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert tune_cli("--strategy", "kd", "--out", str(tmp_path / "s")) == 2
    err = capsys.readouterr().err.strip()
    assert err == "kdzoo: error: kdzoo tune needs Optuna, which is not installed: pip install 'kdzoo[tune]'"
    assert not (tmp_path / "s").exists()


@needs_optuna
@pytest.mark.parametrize("args, message", [
    (["--strategy", "kd", "--search", "kd.tempreature=1:8"], "unknown parameter of kd in search key 'kd.tempreature' "
                                                             "'tempreature'; did you mean 'temperature'"),
    (["--strategy", "kd", "--search", "dkd.beta=1:8"], "unknown strategy in search key 'dkd.beta' 'dkd'"),
    (["--strategy", "kd", "--search", "kd.alpha=0:2"],
     "search kd.alpha: [0, 2] leaves the parameter's range in [0, 1]"),
    (["--strategy", "kd", "--search", "kd.temperature=0:8:log"], "a log scale needs LOW > 0"),
    (["--strategy", "kd", "--search", "kd.logit_standardize=0:1"], "not a number; only numeric parameters"),
    (["--strategy", "kd", "--search", "kd.temperature"], "expected PARAM=LOW:HIGH[:log]"),
    (["--strategy", "kd", "--seeds", "0"], "share [0] with the table's seeds"),
    (["--strategy", "kd", "--trials", "0"], "--trials must be >= 1"),
    (["--strategy", "kd", "--lr-range", "1:0.1"], "needs finite LOW < HIGH"),
    (["--strategy", "kd", "--storage", "nosuchdb://x"], "--storage 'nosuchdb://x': cannot open it"),
])
def test_bad_tuning_requests_are_one_line_errors(args, message, capsys, tmp_path):
    assert tune_cli(*args, "--out", str(tmp_path / "s")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdzoo: error: ") and "\n" not in err and message in err, err
    assert not (tmp_path / "s").exists()


@needs_optuna
def test_an_unknown_study_is_one_line_naming_the_studies_there(kd_study, capsys):
    spec = json.loads((kd_study / "spec.json").read_text())
    assert main(["tune", "--study", "kd_mlp_digts", "--storage", spec["storage"]]) == 2
    assert f"did you mean '{spec['name']}'" in capsys.readouterr().err


@needs_optuna
def test_trials_that_trail_the_median_are_pruned(tmp_path):
    from kdzoo.bench.tune import tune

    config = {"data": "digits", "student": {"name": "mlp", "kwargs": {"hidden": [8]}}, "strategy": "ce",
              "train": {"steps": 8, "eval_every": 1}, "runtime": {"progress": False}}
    summary = tune(config, trials=6, out=tmp_path / "s", lr_range="0.00001:1:log", log=lambda *a, **k: None)
    pruned = [row for row in summary["rows"] if row["state"] == "pruned"]
    assert summary["trials"]["pruned"] == len(pruned) >= 1 and summary["trials"]["complete"] + len(pruned) == 6
    assert all(row["number"] >= 3 and 2 <= row["reported"] < 8 for row in pruned)  # after 3 trials, mid-run


def test_an_image_folder_without_a_test_part_keeps_its_test_images_unreadable():
    import torch

    from kdzoo.bench.tune import seal_test
    from kdzoo.data import DatasetBundle, LazyImages, Splits

    files = [f"/data/img{i}.png" for i in range(6)]
    bundle = DatasetBundle(LazyImages(files, 1, (8, 8)), torch.arange(6) % 2, classes=["a", "b"])
    splits = Splits(np.array([0, 1, 2]), np.array([3]), np.array([4, 5]), np.array([0, 1, 2]), np.array([], int))
    sealed, sealed_splits = seal_test(bundle, splits)
    assert sealed.x.files[:4] == files[:4] and all("sealed" in f for f in sealed.x.files[4:])
    assert len(sealed_splits.test) == 0 and bundle.x.files == files  # the caller's bundle is untouched

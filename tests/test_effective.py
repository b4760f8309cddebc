"""Effective configuration: recorded in the run directory, re-runnable, and the key of bench cells."""

import dataclasses
import json

import pytest
import yaml

from kdzoo.bench.suite import expand_all, list_cells, run_bench
from kdzoo.cli import main
from kdzoo.config import make_config
from kdzoo.train.effective import cell_key, effective_config
from kdzoo.zoo.stack import resolve_stack
from kdzoo.zoo.plugins import load_zoo
from test_bench import SUITE as BENCH_SUITE

# test_bench's tiny digits suite, with one strategy of each kind whose key should move on its own
SUITE = dict(BENCH_SUITE, name="keys", tasks=[dict(BENCH_SUITE["tasks"][0],
                                                    strategies=["ce", "kd", {"name": "dkd", "preset": "cpu"}, "at"])])

SOFT_TP = """
import kdzoo, torch.nn.functional as F

class SoftTP(kdzoo.plugin.Strategy):
    name = "soft-tp"
    family = "logit"
    paper = "test"

    def needs(self):
        return kdzoo.plugin.Needs(kdzoo.plugin.Requirement(logits=True), kdzoo.plugin.Requirement(logits=True))

    def forward(self, batch, student, teacher, step):
        return {"soft": F.mse_loss(student.logits, teacher.logits)}

@kdzoo.plugin.hookimpl
def register_strategies(register):
    register(SoftTP)
"""


def keys_by_variant(tmp_path, suite=SUITE):
    cells, _ = expand_all(suite, load_zoo(), tmp_path / "bench")
    return {(c.variant, c.seed): c.key for c in cells}


def changed(before: dict, after: dict) -> set[str]:
    return {variant for (variant, seed), key in before.items() if after[(variant, seed)] != key}


def test_two_spellings_of_one_config_are_one_cell(tmp_path):
    zoo = load_zoo()
    plain = make_config({"strategy": "kd", "train": {"epochs": 15}})
    spelled = make_config({"strategy": [{"name": "kd", "params": {"temperature": 4.0}}], "train": {"epochs": 15.0}})
    assert effective_config(plain, resolve_stack(plain.strategy, zoo))["strategy"] == [
        {"name": "kd", "params": {"temperature": 4.0, "alpha": 0.9, "logit_standardize": False}}]
    assert cell_key(plain, zoo) == cell_key(spelled, zoo)
    assert cell_key(plain, zoo) != cell_key(make_config({"strategy": "kd", "train": {"epochs": 16}}), zoo)


def test_two_spellings_in_one_suite_run_once_and_both_rows_read_the_result(tmp_path):
    suite = json.loads(json.dumps(SUITE))
    suite["seeds"], suite["tasks"][0]["steps"] = [0], 4
    suite["tasks"][0]["strategies"] = ["ce", "kd", {"name": "kd", "params": {"temperature": 4.0}}]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    logs = []
    rows = run_bench(str(path), tmp_path / "b", progress=False, log=logs.append)["rows"]
    assert "3 cells, 1 reused, 2 to run" in logs[0]
    kd = [r for r in rows if r["variant"] in ("kd", "kd(temperature=4.0)")]
    assert len(kd) == 2 and kd[0]["key"] == kd[1]["key"] and all(r["status"] == "ok" for r in kd)
    assert kd[0]["test_best_acc"] == kd[1]["test_best_acc"]


def test_a_changed_default_reruns_only_cells_holding_that_strategy(tmp_path, monkeypatch):
    before = keys_by_variant(tmp_path)
    kd = load_zoo().strategy("kd").obj

    @dataclasses.dataclass
    class NewDefault(kd.Config):
        alpha: float = 0.5

    monkeypatch.setattr(kd, "Config", NewDefault)
    assert changed(before, keys_by_variant(tmp_path)) == {"kd"}


def test_a_changed_preset_reruns_only_cells_using_that_strategy(tmp_path, monkeypatch):
    before = keys_by_variant(tmp_path)
    dkd = load_zoo().strategy("dkd").obj
    presets = {name: dict(values) for name, values in dkd.presets.items()}
    presets["cpu"]["beta"] = presets["cpu"].get("beta", 1.0) + 1.0
    monkeypatch.setattr(dkd, "presets", presets)
    assert changed(before, keys_by_variant(tmp_path)) == {"dkd(preset=cpu)"}


def edit_loss(monkeypatch, module: str, old: str, new: str) -> None:
    """Make the loss reach read ``kdzoo/losses/MODULE.py`` with ``old`` replaced by ``new`` (the file stays)."""
    import kdzoo.train.loss_reach as reach

    real = reach._read_source

    def edited(path):
        text = real(path)
        if path.name == f"{module}.py" and path.parent.name == "losses":
            assert old in text, (module, old)
            return text.replace(old, new)
        return text

    monkeypatch.setattr(reach, "_read_source", edited)


def test_a_loss_edit_reruns_only_the_cells_whose_strategies_reach_it(tmp_path, monkeypatch):
    before = keys_by_variant(tmp_path)
    with monkeypatch.context() as m:  # DKD's terms: only the dkd cells
        edit_loss(m, "logit", "nckd = F.kl_div(log_q_s, q_t,", "nckd = 1.0 * F.kl_div(log_q_s, q_t,")
        assert changed(before, keys_by_variant(tmp_path)) == {"dkd(preset=cpu)"}
    with monkeypatch.context() as m:  # a helper only kd reaches (through kd_loss)
        edit_loss(m, "logit", "    log_p_s = F.log_softmax(", "    log_p_s = 1.0 * F.log_softmax(")
        assert changed(before, keys_by_variant(tmp_path)) == {"kd"}
    with monkeypatch.context() as m:  # a helper both reach: kd_loss and dkd_terms standardize with it
        edit_loss(m, "logit", "(logits.std(-1, keepdim=True) + eps)", "(logits.std(-1, keepdim=True) + 1.0 * eps)")
        assert changed(before, keys_by_variant(tmp_path)) == {"kd", "dkd(preset=cpu)"}
    with monkeypatch.context() as m:  # at reaches attention_map through at_loss
        edit_loss(m, "feature", "feature.abs().pow(p)", "feature.abs().pow(1.0 * p)")
        assert changed(before, keys_by_variant(tmp_path)) == {"at"}
    with monkeypatch.context() as m:  # a loss no strategy of the suite reaches
        edit_loss(m, "relational", "return _relation_smooth_l1(student, teacher, _angles)",
                  "return 1.0 * _relation_smooth_l1(student, teacher, _angles)")
        assert changed(before, keys_by_variant(tmp_path)) == set()
    assert keys_by_variant(tmp_path) == before


def test_a_member_that_reaches_no_loss_has_no_loss_part():
    from kdzoo.config import StrategySpec
    from kdzoo.train.effective import member_code as code_of
    from kdzoo.zoo.stack import Member

    zoo = load_zoo()

    def member_code(name, zoo):  # the code alone: set-kd's parameters need a file, its code does not
        entry = zoo.strategy(name)
        return code_of(Member(StrategySpec(name), entry.obj, None, entry.distribution, zoo.spelling(entry)))

    assert "losses" not in member_code("ce", zoo) and "losses" not in member_code("weight-selection", zoo)
    assert member_code("kd", zoo)["losses"] != member_code("dkd", zoo)["losses"]
    assert member_code("kd", zoo)["losses"] == member_code("set-kd", zoo)["losses"]  # the same loss code


def _reached_names(tmp_path, code: str) -> set[str]:
    """The losses a strategy module holding ``code`` reaches (:func:`kdzoo.train.loss_reach.reached_names`)."""
    from kdzoo.train.loss_reach import reached_names

    path = tmp_path / "strategy.py"
    path.write_text(code)
    return reached_names([path])


def test_the_loss_reach_reads_every_spelling_and_takes_the_package_whole_when_it_cannot_tell(tmp_path):
    from kdzoo.train.loss_reach import reached_definitions

    def names(code):
        return _reached_names(tmp_path, code)

    assert names("from kdzoo.losses import dkd_loss as d\n") == {"__init__.dkd_loss"}
    assert names("from kdzoo import losses\nlosses.kd_loss(1, 2, 3)\n") == {"__init__.kd_loss"}
    assert names("import kdzoo\nkdzoo.losses.sp_loss(1, 2)\n") == {"__init__.sp_loss"}
    assert names("import kdzoo.losses as L\nL.at_loss\n") == {"__init__.at_loss"}
    assert names("from kdzoo.losses.feature import hint_loss\n") == {"feature.hint_loss"}
    assert names("import torch.nn.functional as F\nF.mse_loss\n") == set()
    assert names("from kdzoo import losses\ngetattr(losses, 'kd_loss')\n") == {"*"}
    assert names("from kdzoo.losses import *\n") == {"*"}
    dkd = set(reached_definitions({"__init__.dkd_loss"}))
    assert dkd == {"logit.dkd_loss", "logit.dkd_terms", "logit.standardize_logits"}
    assert "logit.pseudo_label_loss" in reached_definitions({"__init__.one_hot_loss"})  # across modules
    everything = reached_definitions({"*"})
    assert dkd < set(everything) and "datafree.tv_loss" in everything
    assert set(reached_definitions({"__init__.no_such_loss"})) == set(everything)


def test_the_loss_reach_follows_kdzoo_bound_by_any_import_and_a_module_spelled_through_the_package(tmp_path):
    def names(code):
        return _reached_names(tmp_path, code)

    # ``import kdzoo.plugin`` binds ``kdzoo`` as ``import kdzoo`` does
    assert names("import kdzoo.plugin\nkdzoo.losses.kd_loss(1, 2, 3)\n") == {"__init__.kd_loss"}
    assert names("import kdzoo.plugin\nkdzoo.plugin.Strategy\n") == set()
    assert names("import kdzoo.losses\nkdzoo.losses.logit.dkd_loss\n") == {"logit.dkd_loss"}
    assert names("from kdzoo import losses\nlosses.feature.at_loss\n") == {"feature.at_loss"}
    assert names("import kdzoo.losses.relational as R\nR.sp_loss\n") == {"relational.sp_loss"}
    assert names("from kdzoo import losses\nf(losses.logit)\n") == {"*"}  # a module passed on
    assert names("import kdzoo.plugin\ngetattr(kdzoo, 'losses')\n") == {"*"}


SCRATCH_LOSSES = {
    "__init__.py": "from .a import f, g\nfrom .b import h, k, m, n, q\nfrom .c import s\n",
    "a.py": ("import torch\n\ndef f(x):\n    return x\n\ndef g(x):\n    return x\n\n"
             "try:\n    def fast(x):\n        return x\nexcept ImportError:\n    fast = None\n"),
    "b.py": ("from . import f\nfrom kdzoo.losses import g\nfrom .a import fast\nfrom kdzoo import losses\n"
             "import kdzoo.losses.a as A\n\n"
             "def h(x):\n    return f(x)\n\ndef k(x):\n    return g(x)\n\ndef m(x):\n    return fast(x)\n\n"
             "def n(x):\n    return losses.a.f(x) + losses.g(x)\n\ndef q(x):\n    return A.f(x)\n"),
    "c.py": "from .a import *\n\ndef s(x):\n    return f(x)\n",
}


def test_the_loss_reach_follows_a_loss_modules_imports_and_takes_the_package_whole_when_it_cannot_tell(
        tmp_path, monkeypatch):
    import kdzoo.train.loss_reach as reach

    folder = tmp_path / "kdzoo" / "losses"
    folder.mkdir(parents=True)
    for name, text in SCRATCH_LOSSES.items():
        (folder / name).write_text(text)
    monkeypatch.setattr(reach, "FOLDER", folder)

    def reached(name):
        return set(reach.reached_definitions({f"__init__.{name}"}))

    assert reached("h") == {"b.h", "a.f"}  # ``from . import f`` in a loss module
    assert reached("k") == {"b.k", "a.g"}  # ``from kdzoo.losses import g``
    assert reached("n") == {"b.n", "a.f", "a.g"}  # ``losses.a.f``, ``losses.g``
    assert reached("q") == {"b.q", "a.f"}  # ``import kdzoo.losses.a as A``
    everything = set(reach.reached_definitions({"*"}))
    assert everything == {"a.f", "a.g", "b.h", "b.k", "b.m", "b.n", "b.q", "c.s"}
    assert reached("m") == everything  # ``fast`` is bound inside a top-level ``try``: no definition to follow
    assert reached("s") == everything  # a star import: any name of the package

    strategy = tmp_path / "strategy.py"
    strategy.write_text("from kdzoo.losses import h\n")
    before = reach.losses_reached_hash([strategy])
    real = reach._read_source
    monkeypatch.setattr(reach, "_read_source", lambda path: real(path).replace(
        "def f(x):\n    return x", "def f(x):\n    return 1.0 * x"))
    assert reach.losses_reached_hash([strategy]) != before  # an edit of what ``h`` reaches through ``from . import``


def test_cells_keyed_by_earlier_loss_forms_are_adopted_until_a_loss_changes(monkeypatch):
    import kdzoo.train.effective as eff

    zoo, config = load_zoo(), make_config({"strategy": "kd"})
    whole_package = eff.cell_key(config, zoo, losses_package=True)  # every member hashed kdzoo/losses/
    assert whole_package != eff.cell_key(config, zoo) and whole_package in eff.legacy_cell_keys(config, zoo)
    with monkeypatch.context() as m:  # the key as kdzoo wrote it before the split: the file's hash for every member
        m.setattr(eff, "losses_hash", lambda **form: eff.LOSSES_SPLIT["file"])
        before_split = eff.cell_key(config, zoo, losses_package=True)
    monkeypatch.setitem(eff.LOSSES_SPLIT, "package", eff.losses_hash())  # the package as the split left it
    assert before_split != eff.cell_key(config, zoo) and before_split in eff.legacy_cell_keys(config, zoo)
    real = eff._file_hash
    monkeypatch.setattr(eff, "_file_hash", lambda path: real(path) + ("-edited" if path.name == "logit.py" else ""))
    assert before_split not in eff.legacy_cell_keys(config, zoo)  # a loss changed: not the code that cell ran


def test_a_plugin_source_or_version_change_reruns_only_its_cells(tmp_path, monkeypatch):
    from test_plugins import write_dist

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    write_dist(site, "kdzoo-softtp", "kdzoo_softtp", SOFT_TP)
    suite = json.loads(json.dumps(SUITE))
    suite["tasks"][0]["strategies"] = ["ce", "kd", "soft-tp"]
    before = keys_by_variant(tmp_path, suite)
    assert keys_by_variant(tmp_path, suite) == before  # nothing changed: the same keys
    with open(site / "kdzoo_softtp.py", "a") as f:
        f.write("# an edit anywhere in the distribution's source\n")
    edited = keys_by_variant(tmp_path, suite)
    assert changed(before, edited) == {"soft-tp"}
    metadata = site / "kdzoo_softtp-0.1.dist-info" / "METADATA"
    metadata.write_text(metadata.read_text().replace("Version: 0.1", "Version: 0.2"))
    assert changed(edited, keys_by_variant(tmp_path, suite)) == {"soft-tp"}


def test_run_directory_records_the_effective_config_and_reruns_it_exactly(tmp_path, capsys):
    runs = tmp_path / "runs"
    common = ["--out", str(runs), "--no-progress", "--set", "teacher_train.epochs=2"]
    assert main(["distill", "--teacher", "mlp", "--student", "linear", "--strategy", "kd", "--data", "digits",
                 "--labels-per-class", "10", "--steps", "6", "--seeds", "0,1", "--name", "first",
                 "--set", "strategy.temperature=2", *common]) == 0
    recorded = yaml.safe_load((runs / "first" / "config.yaml").read_text())
    assert recorded["strategy"] == [
        {"name": "kd", "params": {"temperature": 2.0, "alpha": 0.9, "logit_standardize": False}}]
    assert recorded["train"]["seeds"] == [0, 1] and recorded["runtime"]["progress"] is False
    assert "out" not in recorded and "name" not in recorded
    derived = yaml.safe_load((runs / "first" / "effective.yaml").read_text())
    assert derived["derived"]["total_steps"] == 6 and derived["derived"]["steps_per_epoch"] >= 1
    assert all(isinstance(v, float) for v in derived["derived"]["mean"] + derived["derived"]["std"])
    assert derived["derived"]["splits"]["labelled"] == 100
    assert derived["derived"]["student"]["seed-0"]["input_shape"] == [1, 8, 8]  # digits: 8x8 images
    assert derived["code"]["members"]["kd"]["distribution"] == "kdzoo-logit"
    assert main(["distill", "-c", str(runs / "first" / "config.yaml"), "--out", str(runs), "--name", "again"]) == 0
    first = json.loads((runs / "first" / "summary.json").read_text())["seeds"]
    again = json.loads((runs / "again" / "summary.json").read_text())["seeds"]
    for seed in ("0", "1"):
        for split in ("test_best", "test_last", "val_best", "val_last"):
            assert again[seed][split] == first[seed][split], (seed, split)
    assert yaml.safe_load((runs / "again" / "config.yaml").read_text()) == recorded


def test_bench_list_prints_the_cells_without_running_anything(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    assert main(["bench", "--suite", str(path), "--out", str(tmp_path / "b"), "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 9 and lines[0].endswith("digits | mlp(hidden=[64]) -> mlp(hidden=[8]) | ce | seed 0  [to run]")
    assert lines[-1] == "bench keys: 8 cells (0 done, 8 to run, 0 skipped (not installed))"
    assert not (tmp_path / "b").exists()


def test_strategy_param_needs_a_member_name_only_in_a_multi_member_stack(tmp_path, capsys):
    code = main(["distill", "--teacher", "mlp", "--student", "mlp", "--strategy", "weight-selection+kd",
                 "--data", "digits", "--steps", "2", "--out", str(tmp_path / "r"), "--set", "strategy.temperature=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "the stack has 2 members (weight-selection, kd); name one, e.g. strategy.kd.temperature=2" in err
    assert not (tmp_path / "r").exists()


# what a re-run with nothing changed must not call, each patched where the code looks it up when it calls it: a
# name a module binds with ``from ... import`` at its top is read from that module, not from where it is defined
RERUN_FORBIDDEN = (("kdzoo.train.runs", "distill"), ("kdzoo.train.runs", "run_seed"),
                   ("kdzoo.train.runs", "resolve_teacher"), ("kdzoo.train.prepared", "load_dataset"),
                   ("kdzoo.train.runs", "evaluate"), ("kdzoo.train.seed_run", "evaluate"),
                   ("kdzoo.train.trainer", "evaluate"),
                   # the bench's own teacher, latency and reference-data steps, where bench/suite.py looks them up
                   ("kdzoo.bench.suite", "task_teacher"), ("kdzoo.bench.suite", "load_dataset"),
                   ("kdzoo.bench.suite", "load_model"), ("kdzoo.bench.suite", "latency_ms"))


def patch_rerun_forbidden(m, wrap) -> None:
    """Replace each of :data:`RERUN_FORBIDDEN` with ``wrap("module.name", the function)``."""
    import importlib

    for module, name in RERUN_FORBIDDEN:
        target = importlib.import_module(module)
        m.setattr(target, name, wrap(f"{module}.{name}", getattr(target, name)))


@pytest.mark.slow
def test_rerun_with_nothing_changed_loads_nothing_and_a_new_default_reruns_only_its_cells(tmp_path, monkeypatch):
    suite = json.loads(json.dumps(SUITE))
    suite["tasks"][0]["strategies"] = ["ce", "kd"]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / "bench"
    called = set()

    def counted(what, real):
        def call(*args, **kwargs):
            called.add(what)
            return real(*args, **kwargs)
        return call

    with monkeypatch.context() as m:  # the guard below can fire: the first run calls every name it patches
        patch_rerun_forbidden(m, counted)
        run_bench(str(path), out, progress=False, log=lambda *a: None)
    assert called == {f"{module}.{name}" for module, name in RERUN_FORBIDDEN}

    def forbidden(what, real):
        def fail(*args, **kwargs):
            raise AssertionError(f"a re-run with nothing changed called {what}")
        return fail

    with monkeypatch.context() as m:
        patch_rerun_forbidden(m, forbidden)
        logs = []
        results = run_bench(str(path), out, progress=False, log=logs.append)
    assert "4 reused, 0 to run" in logs[0]
    assert all(r["status"] == "ok" and r.get("latency_ms") for r in results["rows"])
    listing = list_cells(str(path), out).splitlines()
    assert len(listing) == 5 and all(line.endswith("[done]") for line in listing[:4])
    assert listing[-1] == "bench keys: 4 cells (4 done, 0 to run, 0 skipped (not installed))"

    kd = load_zoo().strategy("kd").obj

    @dataclasses.dataclass
    class NewDefault(kd.Config):
        temperature: float = 2.0

    monkeypatch.setattr(kd, "Config", NewDefault)
    logs = []
    run_bench(str(path), out, progress=False, log=logs.append)
    assert "2 reused, 2 to run" in logs[0]


def test_bench_data_root_replaces_the_root_of_tasks_reading_a_folder_and_rekeys_them(tmp_path, capsys):
    folder_task = dict(SUITE["tasks"][0], name="idx", data={"name": "fashion-mnist", "root": "/nowhere"},
                       strategies=["ce"])
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(dict(SUITE, tasks=[SUITE["tasks"][0], folder_task])))
    out = str(tmp_path / "b")
    assert main(["bench", "--suite", str(path), "--out", out, "--list"]) == 0
    before = capsys.readouterr().out
    assert main(["bench", "--suite", str(path), "--out", out, "--list", "--data-root", str(tmp_path / "fm")]) == 0
    after = capsys.readouterr().out

    def keys(listing, task):
        return {line.split()[0] for line in listing.splitlines() if f"  {task} |" in line}

    assert keys(before, "digits") == keys(after, "digits")  # a task without a folder is untouched
    assert len(keys(after, "idx")) == 2 and not keys(before, "idx") & keys(after, "idx")

    code = main(["bench", "--suite", "smoke", "--out", out, "--list", "--data-root", "/x"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--data-root '/x': suite 'smoke' has no task that reads data from a folder" in err


def _edited(monkeypatch, name):
    import kdzoo.train.effective

    real = kdzoo.train.effective._file_hash
    monkeypatch.setattr(kdzoo.train.effective, "_file_hash",
                        lambda path: real(path) + ("-edited" if path.name == name else ""))


def test_editing_one_strategy_module_reruns_its_cells_not_its_siblings(tmp_path, monkeypatch):
    before = keys_by_variant(tmp_path)
    _edited(monkeypatch, "kd.py")  # kd and dkd are siblings in kdzoo-logit; dkd does not import kd
    assert changed(before, keys_by_variant(tmp_path)) == {"kd"}


def test_editing_a_helper_module_reruns_every_strategy_that_imports_it(tmp_path, monkeypatch):
    from kdzoo.train.effective import strategy_sources

    at = load_zoo().strategy("at").obj
    assert "layers.py" in {p.name for p in strategy_sources(at.__module__)}
    before = keys_by_variant(tmp_path)
    _edited(monkeypatch, "layers.py")
    assert changed(before, keys_by_variant(tmp_path)) == {"at"}


def test_finished_cells_under_the_previous_keys_are_kept_not_run_again(tmp_path):
    from kdzoo.train.effective import legacy_cell_key

    suite = json.loads(json.dumps(SUITE))
    suite["seeds"], suite["tasks"][0]["steps"], suite["tasks"][0]["strategies"] = [0], 4, ["ce", "kd"]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    first = run_bench(str(path), tmp_path / "b", progress=False, log=lambda *a: None)
    zoo = load_zoo()
    cells, _ = expand_all(suite, zoo, tmp_path / "b")
    kd = next(c for c in cells if c.variant == "kd")
    legacy = legacy_cell_key(kd.config, zoo)
    assert legacy != kd.key  # kd's plugin package holds other strategies: its old key hashed all of them
    folder = tmp_path / "b" / "cells"
    (folder / kd.key).rename(folder / legacy)  # a bench written before per-strategy source keys
    logs = []
    again = run_bench(str(path), tmp_path / "b", progress=False, log=logs.append)
    assert "2 cells, 2 reused, 0 to run" in logs[1] and logs[0].startswith("1 finished cells kept")
    assert (folder / kd.key).is_dir() and not (folder / legacy).exists()
    assert [r["test_best_acc"] for r in again["rows"]] == [r["test_best_acc"] for r in first["rows"]]

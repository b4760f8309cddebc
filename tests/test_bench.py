"""kdzoo bench: cells keyed by config, reuse, skips, third-party strategies, outputs, run index."""

import json
import multiprocessing as mp
import re
import sys

import pytest
import yaml

from kdzoo.bench.suite import run_bench
from kdzoo.cli import main
from kdzoo.contract.errors import ConfigError

SUITE = {
    "name": "tiny",
    "seeds": [0, 1],
    "tasks": [{
        "name": "digits",
        "data": {"name": "digits", "labels_per_class": 10},
        "steps": 12,
        "optim": {"lr": 0.01},
        "teacher_train": {"epochs": 3},
        "pairs": [{"teacher": {"name": "mlp", "kwargs": {"hidden": [64]}}, "student": {"name": "mlp", "kwargs": {"hidden": [8]}}}],
        "strategies": ["ce", "kd", {"name": "kd", "params": {"temperature": 2.0}}],
    }],
}


def write_suite(tmp_path, suite):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return str(path)


@pytest.fixture
def catalog_with_absent_strategy(monkeypatch):
    """registry.yaml lists a strategy whose plugin is not installed (a skip, not an error)."""
    import kdzoo.zoo.registry

    real = kdzoo.zoo.registry.load_registry

    def load():
        data = real()
        data.setdefault("strategies", {})["not-installed-strategy"] = {"plugin": "kdzoo-absent", "family": "logit"}
        return data

    readers = [m for n, m in sys.modules.items() if n.startswith("kdzoo") and getattr(m, "load_registry", None) is real]
    for module in readers:
        monkeypatch.setattr(module, "load_registry", load)  # the catalog's readers bound it when imported


def test_misspelt_strategy_in_a_suite_is_an_error_naming_close_matches(tmp_path):
    suite = json.loads(json.dumps(SUITE))
    suite["tasks"][0]["strategies"] = ["ce", "kdd"]
    with pytest.raises(ConfigError, match="unknown strategy in suite 'tiny' task 'digits' 'kdd'; did you mean 'kd'"):
        run_bench(write_suite(tmp_path, suite), tmp_path / "b", progress=False, log=lambda *a: None)
    assert not (tmp_path / "b").exists()


def test_bench_runs_reuses_and_reruns_only_changed_cells(tmp_path, catalog_with_absent_strategy):
    logs = []
    out = tmp_path / "bench"
    suite = json.loads(json.dumps(SUITE))
    suite["tasks"][0]["strategies"].append("not-installed-strategy")
    results = run_bench(write_suite(tmp_path, suite), out, progress=False, log=logs.append)
    rows = results["rows"]
    assert len(rows) == 8 and sum(r["status"] == "ok" for r in rows) == 6
    skipped = [r for r in rows if r["status"].startswith("skipped")]
    assert skipped and "not-installed-strategy not installed (pip install" in skipped[0]["status"]
    variants = {e["variant"] for e in results["summary"]}
    assert {"ce", "kd", "kd(temperature=2.0)"} <= variants
    kd = next(e for e in results["summary"] if e["variant"] == "kd")
    assert set(kd["vs_ce"]) >= {"verdict", "beats", "mean_diff", "ci_low", "ci_high", "p", "p_adjusted", "wins", "n"}
    assert kd["seeds"] == 2 and kd["vs_ce"]["verdict"] == "too few seeds" and not kd["vs_ce"]["beats"]
    for name in ("results.csv", "results.json", "results.md", "report.html", "accuracy_0.png", "cost_0.png",
                 "curves_0.png"):
        assert (out / name).exists(), name
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="http' not in html
    assert "one-sided paired t-test" in html and "| too few seeds |" in (out / "results.md").read_text()
    saved = json.loads((out / "results.json").read_text())
    assert saved["provenance"]["command"] and saved["provenance"]["versions"]["kdzoo"]
    curve = next(r for r in saved["rows"] if r["status"] == "ok")["curve"]  # each cell's validation curve
    assert curve["split"] == "val" and curve["step"][-1] == next(r for r in rows if r["status"] == "ok")["steps"]
    # same suite again: nothing runs
    logs.clear()
    run_bench(write_suite(tmp_path, suite), out, progress=False, log=logs.append)
    assert "6 reused, 0 to run" in logs[0]
    # a changed parameter runs that variant anew, nothing else
    changed = json.loads(json.dumps(suite))
    changed["tasks"][0]["strategies"][2]["params"]["temperature"] = 3.0
    logs.clear()
    run_bench(write_suite(tmp_path, changed), out, progress=False, log=logs.append)
    assert "4 reused, 2 to run" in logs[0]


def test_same_split_order_and_student_init_across_strategies(tmp_path):
    results = run_bench(write_suite(tmp_path, dict(SUITE, seeds=[0])), tmp_path / "b", progress=False, log=lambda *a: None)
    from kdzoo.bench.suite import expand, load_suite
    from kdzoo.zoo.plugins import load_zoo

    cells = expand(load_suite(str(tmp_path / "suite.yaml")), load_zoo(), tmp_path / "b")
    a, b = cells[0].config, cells[1].config
    assert a.data == b.data and a.train.seeds == b.train.seeds and a.train.steps == b.train.steps and a.student == b.student
    assert results["rows"][0]["student_params"] == results["rows"][1]["student_params"]


def test_third_party_strategy_unknown_to_registry_runs_by_name(tmp_path, monkeypatch):
    from test_plugins import THIRD_PARTY, write_dist

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    write_dist(site, "kdzoo-thirdparty", "kdzoo_thirdparty", THIRD_PARTY)
    suite = json.loads(json.dumps(SUITE))
    suite["tasks"][0]["strategies"] = ["ce", "soft-only-tp"]
    suite["seeds"] = [0]
    results = run_bench(write_suite(tmp_path, suite), tmp_path / "b", progress=False, log=lambda *a: None)
    assert [r["status"] for r in results["rows"]] == ["ok", "ok"]


def test_bench_cli_with_jobs_and_report(tmp_path, capsys):
    suite = json.loads(json.dumps(SUITE))
    suite["tasks"][0]["strategies"] = ["ce", "kd"]
    code = main(["bench", "--suite", write_suite(tmp_path, suite), "--out", str(tmp_path / "b"), "--jobs", "2",
                 "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "## digits\n" in out and "| teacher |" in out
    rows = json.loads((tmp_path / "b" / "results.json").read_text())["rows"]
    assert all(r["status"] == "ok" and r["ms_per_step"] > 0 and r["latency_ms"] > 0 for r in rows)
    assert main(["report", str(tmp_path / "b")]) == 0
    assert main(["runs", "--kind", "bench", "--json"]) == 0
    assert any(r["path"].endswith("/b") for r in json.loads(capsys.readouterr().out.split("\n", 1)[1]))


def test_bad_suite_and_jobs(tmp_path, capsys):
    assert main(["bench", "--suite", "nope"]) == 2
    assert "unknown suite 'nope'" in capsys.readouterr().err
    assert main(["bench", "--jobs", "0"]) == 2


def _write_many(args):
    from kdzoo.bench.runindex import record

    for i in range(15):
        record("run", f"/tmp/x{args}-{i}", {"i": i}, strategy="kd")


def test_run_index_loses_nothing_under_concurrent_writers(tmp_path, monkeypatch):
    monkeypatch.setenv("KDZOO_INDEX", str(tmp_path / "index.sqlite"))
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_write_many, range(4))
    from kdzoo.bench.runindex import query

    assert len(query("run", strategy="kd")) == 60


def test_teacher_output_cache_is_exact_and_keyed_by_weights(tmp_path, zoo):
    import torch

    from kdzoo.config import DataConfig, ModelConfig
    from kdzoo.data import load_dataset, make_splits, to_float
    from kdzoo.models.wrapper import create_model
    from kdzoo.contract.strategy import Requirement
    from kdzoo.train.teacher_cache import TeacherOutputCache

    bundle = load_dataset("digits", None, zoo)
    splits = make_splits(bundle, DataConfig(name="digits"))
    teacher = create_model(ModelConfig("mlp", {"hidden": [32]}), num_classes=10, data_shape=(1, 8, 8), data_mean=[0.3],
                           data_std=[0.4], classes=bundle.classes, task="classification", zoo=zoo).eval()
    req = Requirement(logits=True, pooled=True)
    cache = TeacherOutputCache(teacher, bundle, splits.train, req, tmp_path, 100, torch.device("cpu"))
    assert cache.filled_now
    idx = torch.as_tensor(splits.train[[5, 0, 99]])
    live = teacher.outputs(to_float(bundle.x[idx]), req)
    got = cache.get(idx)
    assert torch.allclose(got.logits, live.logits, atol=1e-6) and torch.allclose(got.pooled, live.pooled, atol=1e-6)
    again = TeacherOutputCache(teacher, bundle, splits.train, req, tmp_path, 100, torch.device("cpu"))
    assert not again.filled_now and again.key == cache.key
    with torch.no_grad():
        teacher.net.fc.bias.add_(1.0)
    changed = TeacherOutputCache(teacher, bundle, splits.train, req, tmp_path, 100, torch.device("cpu"))
    assert changed.key != cache.key and changed.filled_now
    with pytest.raises(KeyError):
        cache.get(torch.as_tensor(splits.test[:2]))


def test_distill_with_and_without_teacher_cache_is_identical(tmp_path):
    import kdzoo

    def run(mode, name):
        r = kdzoo.distill({"teacher": {"name": "mlp", "kwargs": {"hidden": [64]}}, "student": "linear", "strategy": "kd",
                           "data": {"name": "digits", "labels_per_class": 10}, "teacher_train": {"epochs": 2},
                           "train": {"steps": 15}, "runtime": {"progress": False, "teacher_cache": mode},
                           "out": str(tmp_path), "name": name}, log=lambda *a: None)
        return r.seeds[0]["test_best"], r.seeds[0]["val_best"]

    assert run("auto", "a") == run("off", "b")


class CountingReference:
    """A plugin with one reference row that counts its calls (to check caching)."""

    calls = 0

    @staticmethod
    def majority(teacher, bundle, splits):
        CountingReference.calls += 1
        labelled = bundle.y[splits.labelled]
        majority = labelled.bincount().argmax()
        test = bundle.y[splits.test]
        assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
        return {"test_acc": float((test == majority).float().mean() * 100), "params": 0}


def test_hook_register_references_rows_are_computed_once_and_reused(tmp_path):
    import kdzoo
    from kdzoo.zoo.plugins import load_zoo

    class Plugin:
        @kdzoo.plugin.hookimpl
        def register_references(register):
            register("majority-class", CountingReference.majority, description="majority class of the labels")

    zoo = load_zoo()
    assert zoo.add_plugin(Plugin, "counting", "kdzoo-counting")
    assert zoo.collect().references["majority-class"].distribution == "kdzoo-counting"
    suite = json.loads(json.dumps(SUITE))
    suite["tasks"][0].update(strategies=["ce"], references=["majority-class", "teacher-feature-probe", "no-such-ref"])
    suite["seeds"] = [0]
    CountingReference.calls = 0
    results = run_bench(write_suite(tmp_path, suite), tmp_path / "b", zoo=zoo, progress=False, log=lambda *a: None)
    rows = {r["variant"]: r for r in results["rows"]}
    assert CountingReference.calls == 1 and rows["majority-class (reference)"]["status"] == "ok"
    assert 5.0 < rows["majority-class (reference)"]["test_best_acc"] < 20.0  # one digit of ten
    assert rows["no-such-ref (reference)"]["status"].startswith("skipped: reference no-such-ref not installed")
    if "teacher-feature-probe" in zoo.references:  # kdzoo-feature installed
        probe = rows["teacher-feature-probe (reference)"]
        assert probe["status"] == "ok" and probe["test_best_acc"] > 50 and probe["student_params"] > 0
    entry = next(e for e in results["summary"] if e["variant"] == "majority-class (reference)")
    assert entry["kind"] == "reference" and "vs_ce" not in entry
    md = (tmp_path / "b" / "results.md").read_text()
    assert "| majority-class (reference) |" in md
    run_bench(write_suite(tmp_path, suite), tmp_path / "b", zoo=zoo, progress=False, log=lambda *a: None)
    assert CountingReference.calls == 1  # reused from the bench directory


def test_bad_references_entry_is_a_config_error(tmp_path):
    from kdzoo.bench.suite import expand_all, load_suite
    from kdzoo.contract.errors import ConfigError
    from kdzoo.zoo.plugins import load_zoo

    suite = json.loads(json.dumps(SUITE))
    suite["tasks"][0]["references"] = "teacher-feature-probe"
    with pytest.raises(ConfigError, match="'references' must be a list"):
        expand_all(load_suite(write_suite(tmp_path, suite)), load_zoo(), tmp_path / "b")


def test_a_strategy_with_no_gradient_path_to_the_student_is_not_applicable_not_failed(tmp_path):
    suite = json.loads(json.dumps(SUITE))
    suite["tasks"][0].update(strategies=["ce", "pooled-feature"], steps=3)
    suite["tasks"][0]["pairs"][0]["student"] = {"name": "linear"}
    suite["seeds"] = [0]
    results = run_bench(write_suite(tmp_path, suite), tmp_path / "b", progress=False, log=lambda *a: None)
    status = {r["variant"]: r["status"] for r in results["rows"]}
    assert status["ce"] == "ok"
    assert re.fullmatch(
        r"not applicable: strategy 'pooled-feature' of kdzoo-feature: loss term 'pooled' \(weight 1, stage 'main'\) "
        r"never reaches a trainable parameter of the student: student 'linear' has no features to match \(its "
        r"features are its input\) \(kdzoo_feature/pooled\.py:\d+\)", status["pooled-feature"]), \
        status["pooled-feature"]
    assert results["failed"] == []
    assert not any(e.get("vs_ce") for e in results["summary"] if e["variant"] == "pooled-feature")


def test_published_numbers_of_a_pair_stand_beside_the_measured_ones(tmp_path):
    """A suite's `published:` numbers (e.g. mdistiller's table) appear in a "paper" column: the teacher
    row gets the paper's teacher, `ce` the paper's student trained alone, every other row its own."""
    suite = json.loads(json.dumps(SUITE))
    suite["seeds"] = [0]
    suite["tasks"][0]["strategies"] = ["ce", "kd"]
    suite["tasks"][0]["pairs"][0]["published"] = {"teacher": 79.42, "student": 72.5, "kd": 73.33}
    out = tmp_path / "b"
    run_bench(write_suite(tmp_path, suite), out, progress=False, log=lambda *a: None)
    def first_table(path):
        section = path.read_text().split("\n## ")[1]
        lines = section[section.index("\n| "):].strip().split("\n\n")[0].splitlines()  # up to the blank line
        table = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("| ")]
        return table[0], table[1:]

    header, body = first_table(out / "results.md")
    paper = header.index("paper")
    assert {row[0]: row[paper] for row in body} == {"teacher": "79.42", "ce": "72.50", "kd": "73.33"}
    # a suite without published numbers has no such column
    run_bench(write_suite(tmp_path, dict(SUITE, seeds=[0])), tmp_path / "plain", progress=False, log=lambda *a: None)
    assert "paper" not in first_table(tmp_path / "plain" / "results.md")[0]

"""The docs stay true to the code: hook headings and tests, the example plugin shown verbatim, the
hook examples run, the generated strategy reference is current, every config key is documented."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
import types
from pathlib import Path

import pytest
import torch

from kdzoo.zoo.plugins import load_zoo

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PLUGINS_MD = DOCS / "plugins.md"
EXAMPLE = DOCS / "example-plugin"
FILE_MARK = re.compile(r"^<!-- file: docs/example-plugin/(\S+) -->$")
EXAMPLE_MARK = re.compile(r"^<!-- example: (\w+) -->$")
NOT_SOURCE = ("__pycache__", "build", "dist")


def hook_specs() -> dict[str, tuple[str, ...]]:
    """Every hook kdzoo specifies, with its argument names."""
    pm = load_zoo(entry_points=False).pm
    callers = {name: getattr(pm.hook, name) for name in dir(pm.hook) if not name.startswith("_")}
    return {name: tuple(c.spec.argnames) for name, c in callers.items() if c.has_spec()}


def marked_blocks(text: str, mark: re.Pattern) -> list[tuple[str, str]]:
    """``(marker argument, body)`` of each fenced block that directly follows a marker line."""
    lines = text.splitlines(keepends=True)
    out = []
    for i, line in enumerate(lines):
        match = mark.match(line.rstrip("\n"))
        if not match:
            continue
        assert i + 1 < len(lines) and lines[i + 1].startswith("```"), f"plugins.md:{i + 2}: no fenced block after {line.strip()}"
        end = next((j for j in range(i + 2, len(lines)) if lines[j].rstrip("\n") == "```"), None)
        assert end is not None, f"plugins.md:{i + 2}: unterminated fenced block"
        out.append((match.group(1), "".join(lines[i + 2:end])))
    return out


def doc_example(name: str) -> types.ModuleType:
    """The ``<!-- example: NAME -->`` block of plugins.md, executed as a module."""
    blocks = dict(marked_blocks(PLUGINS_MD.read_text(), EXAMPLE_MARK))
    assert name in blocks, f"plugins.md has no example block {name!r}"
    module = types.ModuleType(f"docs_example_{name}")
    exec(compile(blocks[name], f"docs/plugins.md ({name} example)", "exec"), module.__dict__)
    return module


def zoo_with(module: types.ModuleType):
    zoo = load_zoo(entry_points=False)
    assert zoo.add_plugin(module, "docs-example", "docs-example")
    return zoo.collect()


def gen_strategies() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("gen_strategies", DOCS / "gen_strategies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- hooks ------------------------------------------------------------------------------------------
def test_every_hook_has_a_heading_with_its_arguments_in_plugins_md():
    headings = {line.strip() for line in PLUGINS_MD.read_text().splitlines() if line.startswith("## ")}
    specs = hook_specs()
    assert specs, "no hook specifications found"
    for name, args in specs.items():
        assert f"## {name}({', '.join(args)})" in headings, f"docs/plugins.md lacks the heading '## {name}({', '.join(args)})'"


NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


def test_the_hook_count_in_plugins_md_is_the_number_of_hooks():
    match = re.search(r"`kdzoo/contract/hookspecs.py`: (\w+) hooks", PLUGINS_MD.read_text())
    assert match, "docs/plugins.md no longer states how many hooks there are"
    assert NUMBERS.get(match.group(1)) == len(hook_specs())


def test_the_class_attribute_table_in_plugins_md_lists_exactly_the_strategy_class_attributes():
    from kdzoo.contract.strategy import Strategy

    text = PLUGINS_MD.read_text()
    table = text[text.index("### Class attributes"):text.index("### Config and presets")]
    documented = re.findall(r"^\| `(\w+)` \|", table, flags=re.M)
    declared = [name for name, hint in Strategy.__annotations__.items() if "ClassVar" in str(hint)]
    assert documented == declared


def test_every_parameter_of_every_installed_strategy_has_help(zoo):
    for name, entry in zoo.collect().strategies.items():
        for field in dataclasses.fields(entry.obj.Config):
            assert field.metadata.get("help"), (
                f"strategy {name!r}: parameter {field.name!r} has no help (kdzoo.plugin.param)")


def test_every_hook_has_a_test_hook_function():
    names = set()
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_hook_"):
                names.add(node.name)
    for hook in hook_specs():
        assert any(hook in n for n in names), f"no test function named test_hook_...{hook}... under tests/"


def test_hook_register_strategies_example_in_docs_registers_a_credited_strategy():
    pytest.importorskip("kdzoo_example")
    zoo = zoo_with(doc_example("register_strategies"))
    entry = zoo.strategies["logit-mse"]
    assert entry.distribution == "docs-example" and entry.obj.family == "logit"


def test_hook_register_models_example_in_docs_builds_a_model_with_the_feature_api():
    from kdzoo.config import ModelConfig
    from kdzoo.models.wrapper import create_model
    from kdzoo.contract.strategy import Requirement
    from kdzoo.testing import check_strategy

    zoo = zoo_with(doc_example("register_models"))
    assert zoo.models["tiny-conv"].distribution == "docs-example"
    model = create_model(ModelConfig("tiny-conv", {"width": 4}), num_classes=3, data_shape=(1, 8, 8), data_mean=None,
                         data_std=None, classes=["a", "b", "c"], task="classification", zoo=zoo)
    out = model.outputs(torch.rand(2, 1, 8, 8), Requirement(logits=True, pooled=True, features=(0, 1)))
    assert out.logits.shape == (2, 3) and out.pooled.shape == (2, model.num_features)
    assert [out.features[i].shape[1] for i in (0, 1)] == [f["num_chs"] for f in model.feature_info]
    check_strategy("ce", zoo=zoo, teacher=ModelConfig("tiny-conv"), student=ModelConfig("tiny-conv", {"width": 4}))


def test_hook_register_datasets_example_in_docs_loads_and_trains(tmp_path):
    import kdzoo
    from kdzoo.data import load_dataset

    zoo = zoo_with(doc_example("register_datasets"))
    entry = zoo.datasets["blobs"]
    assert entry.distribution == "docs-example" and entry.meta["task"] == "classification"
    bundle = load_dataset("blobs:90", None, zoo)
    assert bundle.x.shape == (90, 2) and bundle.classes == ["a", "b", "c"]
    result = kdzoo.distill({"student": "mlp", "strategy": "ce", "data": "blobs:90", "train": {"steps": 2},
                            "runtime": {"progress": False}, "out": str(tmp_path), "name": "blobs"},
                           zoo=zoo, log=lambda *a: None)
    assert result.seeds[0]["steps"] == 2


def test_hook_register_references_example_in_docs_runs_in_a_bench(tmp_path):
    import yaml

    from kdzoo.bench.suite import run_bench

    zoo = load_zoo()
    assert zoo.add_plugin(doc_example("register_references"), "docs-example", "docs-example")
    assert zoo.collect().references["majority-class"].distribution == "docs-example"
    suite = {"name": "ref", "seeds": [0], "tasks": [{
        "name": "digits", "data": {"name": "digits", "labels_per_class": 5}, "steps": 2,
        "teacher_train": {"epochs": 1}, "references": ["majority-class"],
        "pairs": [{"teacher": "mlp", "student": {"name": "mlp", "kwargs": {"hidden": [8]}}}], "strategies": ["ce"]}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(suite))
    results = run_bench(str(tmp_path / "s.yaml"), tmp_path / "b", zoo=zoo, progress=False, log=lambda *a: None)
    row = next(r for r in results["rows"] if r["variant"] == "majority-class (reference)")
    assert row["status"] == "ok" and 5.0 < row["test_best_acc"] < 20.0


def test_hook_register_loggers_example_in_docs_writes_every_metric(tmp_path):
    import csv

    import kdzoo

    zoo = zoo_with(doc_example("register_loggers"))
    assert zoo.loggers["csv"].distribution == "docs-example"
    result = kdzoo.distill({"student": "linear", "strategy": "ce", "data": "digits", "train": {"steps": 2},
                            "runtime": {"progress": False, "loggers": ["csv"]}, "out": str(tmp_path), "name": "csv"},
                           zoo=zoo, log=lambda *a: None)
    rows = list(csv.reader((result.run_dir / "seed-0" / "metrics.csv").open()))
    keys = {key for _, key, _ in rows}
    assert {"param/optim.lr", "train/label", "train/loss", "lr", "val/acc", "artifact", "status"} <= keys
    tested = {key: (int(step), float(value)) for step, key, value in rows if key.startswith("test")}
    summary = result.seeds[0]
    assert tested["test/acc"] == (2, pytest.approx(summary["test_best"]["acc"]))  # at the end of the seed
    assert tested["test_last/acc"][1] == pytest.approx(summary["test_last"]["acc"])
    assert ["0", "status", "ok"] in rows


# -- the example plugin -----------------------------------------------------------------------------
def test_example_plugin_files_are_shown_verbatim_in_plugins_md():
    blocks = marked_blocks(PLUGINS_MD.read_text(), FILE_MARK)
    shown = {path for path, _ in blocks}
    assert len(shown) == len(blocks), "a file of the example plugin is shown twice"
    for path, body in blocks:
        assert (EXAMPLE / path).is_file(), f"plugins.md shows docs/example-plugin/{path}, which does not exist"
        assert body == (EXAMPLE / path).read_text(), f"plugins.md's copy of docs/example-plugin/{path} differs from the file"
    files = {p.relative_to(EXAMPLE).as_posix() for p in EXAMPLE.rglob("*") if p.is_file()
             and not any(part in NOT_SOURCE or part.endswith(".egg-info") or part.startswith(".")
                         for part in p.relative_to(EXAMPLE).parts)}
    assert shown == files, f"files of docs/example-plugin not shown in plugins.md: {sorted(files - shown)}"


# -- the strategy reference -------------------------------------------------------------------------
def test_strategies_md_is_current(zoo):
    current = (DOCS / "strategies.md").read_text()
    assert gen_strategies().render(zoo) == current, "docs/strategies.md is out of date: run python docs/gen_strategies.py"


def test_strategies_md_lists_exactly_the_installed_strategies(zoo):
    listed = set(re.findall(r"^### `([a-z0-9-]+)`$", (DOCS / "strategies.md").read_text(), re.M))
    assert listed == set(zoo.collect().strategies)


# -- the user guide ---------------------------------------------------------------------------------
def test_every_config_key_is_in_the_user_guide():
    from kdzoo.config import ModelConfig, RunConfig

    guide = (DOCS / "user-guide.md").read_text()
    run = RunConfig()
    keys = [f.name for f in dataclasses.fields(RunConfig)] + [f.name for f in dataclasses.fields(ModelConfig)]
    for section in ("data", "optim", "train", "runtime", "teacher_train"):
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(getattr(run, section))]
    missing = [k for k in keys if f"`{k}`" not in guide]
    assert not missing, f"config keys not documented in docs/user-guide.md: {missing}"


def test_power_table_in_the_user_guide_is_what_the_simulation_prints():
    spec = importlib.util.spec_from_file_location("verdict_power", ROOT / "benchmarks" / "verdict_power.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.table() in (DOCS / "user-guide.md").read_text(), \
        "docs/user-guide.md's power table is out of date: run python benchmarks/verdict_power.py"


def test_docs_describe_the_t_test_not_the_old_rule():
    for path in (ROOT / "README.md", DOCS / "user-guide.md", DOCS / "plugins.md"):
        text = path.read_text()
        # the old rule may be named once, as history, in the user guide; never as the rule in force
        assert "2 s.e. =" not in text and "exceeds\n> two standard errors" not in text, path
    guide = (DOCS / "user-guide.md").read_text()
    assert "one-sided paired t-test" in guide and "Holm-corrected" in guide and "too few seeds" in guide


# -- the losses page --------------------------------------------------------------------------------
LOSSES_MD = DOCS / "losses.md"


def test_losses_page_own_loop_example_runs_as_written(capsys):
    blocks = dict(marked_blocks(LOSSES_MD.read_text(), EXAMPLE_MARK))
    assert "own_loop" in blocks, "docs/losses.md has no <!-- example: own_loop --> block"
    module = types.ModuleType("docs_losses_own_loop")
    with torch.random.fork_rng(devices=[]):  # the example seeds torch; later tests keep their RNG stream
        exec(compile(blocks["own_loop"], "docs/losses.md (own_loop example)", "exec"), module.__dict__)
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["epoch 0", "epoch 1", "epoch 2"]
    assert all(torch.isfinite(torch.tensor(v.item())) for v in (module.ce, module.kd, module.at, module.loss))


def test_losses_page_distiller_loop_example_runs_as_written(capsys):
    blocks = dict(marked_blocks(LOSSES_MD.read_text(), EXAMPLE_MARK))
    assert "distiller_loop" in blocks, "docs/losses.md has no <!-- example: distiller_loop --> block"
    module = types.ModuleType("docs_losses_distiller_loop")
    with torch.random.fork_rng(devices=[]):
        exec(compile(blocks["distiller_loop"], "docs/losses.md (distiller_loop example)", "exec"), module.__dict__)
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["epoch 0", "epoch 1", "epoch 2"]
    assert set(module.out.terms) == {"at", "kd", "label"} and torch.isfinite(module.out.loss)
    assert module.distiller.names == ["at", "kd"] and not module.distiller.teacher.training


def test_losses_page_lists_every_public_loss_function():
    from kdzoo import losses

    table = LOSSES_MD.read_text().split("## The functions and who uses them", 1)[1]
    missing = [name for name in losses.__all__ if f"`{name}`" not in table]
    assert not missing, f"docs/losses.md's table lacks {missing}"

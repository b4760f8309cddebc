"""Discovery through the ``kdzoo`` entry-point group, exactly as for a pip-installed plugin."""

import json
import re
import sys
import textwrap

import pytest
import yaml

from kdzoo import Distiller
from kdzoo.cli import main
from kdzoo.contract.errors import ConfigError, PluginError
from kdzoo.zoo.plugins import load_zoo

THIRD_PARTY = '''
from dataclasses import dataclass
import torch.nn.functional as F
import kdzoo
import kdzoo.plugin

@dataclass
class Cfg:
    weight: float = 1.0

class SoftOnly(kdzoo.plugin.Strategy):
    """Soft targets only at T=1 (a third-party test strategy)."""
    name = "soft-only-tp"
    family = "logit"
    paper = "test"
    Config = Cfg
    uses_unlabelled = True
    def term_weights(self):
        return {"soft": self.config.weight}
    def forward(self, batch, student, teacher, step):
        return {"soft": F.kl_div(F.log_softmax(student.logits, -1), F.softmax(teacher.logits, -1), reduction="batchmean")}

@kdzoo.plugin.hookimpl
def register_strategies(register):
    register(SoftOnly)
'''


def write_dist(root, dist, module, source, entry_name=None):
    """Write an installed distribution (module + dist-info with a kdzoo entry point) under ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[kdzoo]\n{entry_name or module} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


def test_hook_register_strategies_third_party_is_listed_and_used(site, tmp_path, capsys):
    write_dist(site, "kdzoo-thirdparty", "kdzoo_thirdparty", THIRD_PARTY)
    zoo = load_zoo().collect()
    entry = zoo.strategies["soft-only-tp"]
    assert entry.distribution == "kdzoo-thirdparty" and entry.plugin == "kdzoo_thirdparty"
    assert main(["strategies", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["soft-only-tp"]["distribution"] == "kdzoo-thirdparty"
    assert rows["kd"]["distribution"] == "kdzoo-logit"
    code = main(["distill", "--teacher", "mlp", "--student", "linear", "--strategy", "soft-only-tp", "--data", "digits",
                 "--steps", "3", "--out", str(tmp_path / "runs"), "--name", "tp", "--no-progress",
                 "--set", "teacher_train.epochs=1"])
    assert code == 0
    summary = json.loads((tmp_path / "runs" / "tp" / "summary.json").read_text())
    assert summary["seeds"]["0"]["steps"] == 3


def test_broken_and_misspelled_plugins_are_reported_and_others_work(site, capsys, monkeypatch):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)  # make test sets it; this test is about the default
    write_dist(site, "kdzoo-broken", "kdzoo_broken", "import kdzoo_does_not_exist\n")
    write_dist(site, "kdzoo-typo", "kdzoo_typo",
               "import kdzoo\n@kdzoo.plugin.hookimpl\ndef register_strategy(register):\n    pass\n")
    zoo = load_zoo().collect()
    err = capsys.readouterr().err.strip().splitlines()
    assert any('"kdzoo_broken" from kdzoo-broken' in line and "kdzoo_does_not_exist" in line for line in err)
    assert any('"kdzoo_typo"' in line and "register_strategy" in line and "register_strategies" in line for line in err)
    assert "kd" in zoo.strategies  # everything else still loads
    assert zoo.plugins["kdzoo_broken"].error.startswith("ModuleNotFoundError")
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["kdzoo_typo"]["error"] and rows["logit"]["error"] is None


def test_strict_mode_makes_a_broken_plugin_fatal(site, monkeypatch):
    write_dist(site, "kdzoo-broken", "kdzoo_broken", "raise RuntimeError('boom')\n")
    monkeypatch.setenv("KDZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="kdzoo_broken.*boom"):
        load_zoo()


def _impostor(tag, name="kd"):
    """A plugin offering ``NAME`` (its docstring says which plugin it came from) and ``own-TAG``."""
    return THIRD_PARTY.replace('"soft-only-tp"', f'"{name}"').replace("a third-party test strategy", tag) + f'''
class Own(SoftOnly):
    """Only in {tag}."""
    name = "own-{tag}"

@kdzoo.plugin.hookimpl(specname="register_strategies")
def register_own(register):
    register(Own)
'''


DISTILL = ["distill", "--teacher", "mlp", "--student", "linear", "--data", "digits", "--steps", "2", "--no-progress",
           "--set", "teacher_train.epochs=1"]


def _distill(tmp_path, name, *args):
    """Run a 2-step distillation named ``name``; return its exit code and its effective config and code."""
    out = tmp_path / "runs"
    code = main([*DISTILL, "--out", str(out), "--name", name, *args])
    run = out / name
    if code != 0:
        return code, None, None
    return code, yaml.safe_load((run / "config.yaml").read_text()), yaml.safe_load((run / "effective.yaml").read_text())


def test_a_name_two_distributions_offer_is_ambiguous_never_first_come(site, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("KDZOO_PREFER", raising=False)
    # "a_impostor" loads before kdzoo-logit's "logit": it used to take `kd` and make the whole of kdzoo-logit fail
    write_dist(site, "impostor", "kdzoo_impostor", _impostor("impostor"), entry_name="a_impostor")
    zoo = load_zoo().collect()
    assert not capsys.readouterr().err  # not a load error: only a use of the bare name fails
    assert zoo.strategy("kdzoo-logit:kd").distribution == "kdzoo-logit"
    assert "impostor" in zoo.strategy("impostor:kd").obj.__doc__
    assert {"dkd", "dist", "pseudo-label", "regression-kd", "own-impostor"} <= set(zoo.strategies)  # nobody's others go
    assert not any(r.error for r in zoo.plugins.values())
    with pytest.raises(ConfigError, match=r"^strategy 'kd' is ambiguous: 2 plugins offer it; name one "
                                          r"\(impostor:kd, kdzoo-logit:kd\) or pin the bare name"):
        zoo.strategy("kd")

    # the bare name is refused in one line, exit 2, nothing on disk; a stack with it too
    for strategy in ("kd", "at+kd"):
        assert main([*DISTILL, "--strategy", strategy, "--out", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("kdzoo: error: strategy 'kd' is ambiguous") and \
            "impostor:kd, kdzoo-logit:kd" in err[0], err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())

    # kdzoo strategies marks the clash
    assert main(["strategies", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert "kd" not in rows and rows["kdzoo-logit:kd"]["clash"] == ["impostor:kd"]
    assert rows["impostor:kd"]["distribution"] == "impostor" and rows["impostor:kd"]["pinned"] is False
    assert main(["strategies"]) == 0
    line = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("kdzoo-logit:kd "))
    assert line.endswith("[clash: also impostor:kd]")

    # both qualified names work, alone and in a stack (DIST:NAME binds tighter than the stack's "+")
    code, config, effective = _distill(tmp_path, "impostor-kd", "--strategy", "impostor:kd")
    assert code == 0 and config["strategy"][0]["name"] == "impostor:kd"  # re-runnable as it is
    assert effective["code"]["members"]["kd"]["distribution"] == "impostor"
    code, config, effective = _distill(tmp_path, "stack", "--strategy", "own-impostor+kdzoo-logit:kd",
                                       "--set", "strategy.kd.temperature=2")  # a member is addressed by its bare name
    assert code == 0 and [m["name"] for m in config["strategy"]] == ["own-impostor", "kdzoo-logit:kd"]
    assert config["strategy"][1]["params"]["temperature"] == 2
    assert effective["code"]["members"]["kd"]["distribution"] == "kdzoo-logit"
    capsys.readouterr()
    distiller = Distiller("linear", "linear", "kdzoo-logit:kd", kd={"temperature": 3}, num_classes=3, input_shape=(8,),
                          zoo=zoo)
    assert distiller.stack.distributions == {"kd": "kdzoo-logit"} and distiller.stack.members[0].config.temperature == 3


def test_a_pin_in_the_config_or_the_environment_decides_the_bare_name(site, tmp_path, capsys, monkeypatch):
    from kdzoo.bench.suite import expand
    from kdzoo.config import make_config
    from kdzoo.train.effective import cell_key

    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("KDZOO_PREFER", raising=False)
    before = load_zoo()
    plain_key = cell_key(make_config({"strategy": "kd"}), before)  # no clash yet
    write_dist(site, "impostor", "kdzoo_impostor", _impostor("impostor"), entry_name="a_impostor")
    zoo = load_zoo()

    code, config, effective = _distill(tmp_path, "pinned", "--strategy", "kd", "--set", "plugins.prefer.kd=kdzoo-logit",
                                       "--set", "strategy.kd.temperature=2")
    assert code == 0 and config["strategy"] == [{"name": "kdzoo-logit:kd", "params": {**config["strategy"][0]["params"],
                                                                                       "temperature": 2}}]
    assert effective["code"]["members"]["kd"]["distribution"] == "kdzoo-logit"
    monkeypatch.setenv("KDZOO_PREFER", "kd=impostor")
    code, config, effective = _distill(tmp_path, "env-pinned", "--strategy", "kd")
    assert code == 0 and config["strategy"][0]["name"] == "impostor:kd"
    assert effective["code"]["members"]["kd"]["distribution"] == "impostor"
    capsys.readouterr()
    assert main(["strategies", "--json"]) == 0
    assert {r["name"]: r for r in json.loads(capsys.readouterr().out)}["impostor:kd"]["pinned"] is True
    monkeypatch.setenv("KDZOO_PREFER", "kd=nobody")
    assert main([*DISTILL, "--strategy", "kd", "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kdzoo: error: KDZOO_PREFER pins strategy 'kd' to 'nobody', which does not offer it; "
                   "offered by: impostor:kd, kdzoo-logit:kd"]
    assert not (tmp_path / "refused").exists() or not list((tmp_path / "refused").iterdir())
    monkeypatch.delenv("KDZOO_PREFER")

    # one member, one key: kd pinned to kdzoo-logit, kdzoo-logit:kd, and kd where nothing clashes
    pinned = cell_key(make_config({"strategy": "kd", "plugins": {"prefer": {"kd": "kdzoo-logit"}}}), zoo)
    assert pinned == cell_key(make_config({"strategy": "kdzoo-logit:kd"}), zoo) == plain_key
    assert cell_key(make_config({"strategy": "impostor:kd"}), zoo) != pinned

    # a bench suite: qualified and pinned names key like the runs; an unpinned bare name is refused
    task = {"name": "t", "data": "digits", "pairs": [{"teacher": "mlp", "student": "linear"}], "steps": 2}
    def keys(strategies, **pins):
        suite = {"name": "s", "tasks": [dict(task, strategies=strategies, plugins={"prefer": pins})]}
        return [c.key for c in expand(suite, zoo, tmp_path) if c.variant != "ce"]

    assert keys(["kdzoo-logit:kd"]) == keys(["kd"], kd="kdzoo-logit")
    assert keys(["impostor:kd"]) == keys(["kd"], kd="impostor") != keys(["kd"], kd="kdzoo-logit")
    with pytest.raises(ConfigError, match=r"strategy 'kd' is ambiguous.*impostor:kd, kdzoo-logit:kd"):
        expand({"name": "s", "tasks": [dict(task, strategies=["kd"])]}, zoo, tmp_path)


def test_strict_mode_refuses_an_unpinned_clash(site, monkeypatch):
    write_dist(site, "impostor", "kdzoo_impostor", _impostor("impostor"), entry_name="zz_clash")
    monkeypatch.setenv("KDZOO_STRICT_PLUGINS", "1")
    monkeypatch.delenv("KDZOO_PREFER", raising=False)
    with pytest.raises(PluginError, match=r"strategy 'kd' is offered by kdzoo-logit and impostor: use kdzoo-logit:kd"):
        load_zoo().collect()
    monkeypatch.setenv("KDZOO_PREFER", "kd=kdzoo-logit")  # a deliberate pin is not a CI failure
    assert load_zoo().strategy("kd").distribution == "kdzoo-logit"


def _future_metadata(info, requires):
    metadata = info / "METADATA"
    metadata.write_text(metadata.read_text() + "".join(f"Requires-Dist: {r}\n" for r in requires))


def test_a_plugin_built_for_another_kdzoo_is_refused_at_load(site, tmp_path, capsys, monkeypatch):
    from kdzoo.versions import kdzoo_version

    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    running = kdzoo_version()
    write_dist(site, "kdzoo-future", "kdzoo_future", _impostor("future", "soft-future"))
    _future_metadata(site / "kdzoo_future-0.1.dist-info", ["torch", "kdzoo>=99,<100"])
    write_dist(site, "kdzoo-current", "kdzoo_current", _impostor("current", "soft-current"))
    _future_metadata(site / "kdzoo_current-0.1.dist-info", [f"kdzoo>={running},<99", "kdzoo[extra]>=99; extra == 'x'"])
    zoo = load_zoo().collect()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("kdzoo:")]
    assert err == [f'kdzoo: plugin "kdzoo_future" from kdzoo-future failed to load: PluginError: kdzoo-future 0.1 '
                   f"requires kdzoo<100,>=99, but this is kdzoo {running}; install a release of kdzoo-future made for "
                   f"kdzoo {running}"]
    assert "kdzoo_future" not in sys.modules  # refused before its code ran
    assert {"soft-current", "own-current"} <= set(zoo.strategies) and "own-future" not in zoo.strategies
    assert main([*DISTILL, "--strategy", "soft-future", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # the load report every command prints, then the error, in one line
    assert len(err) == 2 and err[0].startswith('kdzoo: plugin "kdzoo_future"'), err
    assert err[1].startswith("kdzoo: error: unknown strategy 'soft-future'"), err
    assert ("plugin 'kdzoo_future' (kdzoo-future) failed to load: PluginError: kdzoo-future 0.1 requires "
            "kdzoo<100,>=99") in err[1]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    monkeypatch.setenv("KDZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="kdzoo-future 0.1 requires kdzoo<100,>=99"):
        load_zoo()


def test_unknown_strategy_of_a_catalogued_plugin_that_was_refused_says_why(site, monkeypatch):
    # an old kdzoo-feature, alone: refused before registering anything; the catalog knows it offers fitnet
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    monkeypatch.setenv("KDZOO_LOAD_PLUGINS", "old_feature")
    write_dist(site, "kdzoo-feature", "kdzoo_feature_old", _impostor("old"), entry_name="old_feature")
    _future_metadata(site / "kdzoo_feature-0.1.dist-info", ["kdzoo<0.0.1"])
    with pytest.raises(ConfigError, match=r"^unknown strategy 'fitnet': plugin 'old_feature' \(kdzoo-feature\) "
                                          r"failed to load: PluginError: kdzoo-feature 0.1 requires kdzoo<0.0.1, "
                                          r"but this is kdzoo"):
        load_zoo().strategy("fitnet")


def test_unknown_strategy_names_the_failed_plugin_that_registered_it(site, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    # registers soft-only-tp, then an invalid second strategy: the plugin fails and offers nothing
    source = THIRD_PARTY.replace("    register(SoftOnly)\n", "    register(SoftOnly)\n    register(Bad)\n") + '''
class Bad(SoftOnly):
    name = "Bad_Name"
'''
    write_dist(site, "kdzoo-half", "kdzoo_half", source)
    capsys.readouterr()
    assert main([*DISTILL, "--strategy", "soft-only-tp", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("kdzoo: error: unknown strategy 'soft-only-tp': plugin 'kdzoo_half' (kdzoo-half) failed "
                              "to load: PluginError: kdzoo_half: invalid name 'Bad_Name'"), err


def _load_error(site, capsys, source, request):
    """Load a throwaway plugin (module named after the test) from ``source``; return its one error line on stderr."""
    module = f"kdzoo_careless_{request.node.name[7:30]}"  # a fresh module per test: imports are cached
    write_dist(site, "kdzoo-careless", module, source, entry_name="kdzoo_careless")
    zoo = load_zoo().collect()
    lines = [line for line in capsys.readouterr().err.splitlines() if '"kdzoo_careless"' in line]
    assert len(lines) == 1, lines
    assert "kd" in zoo.strategies and zoo.plugins["kdzoo_careless"].error
    return lines[0], zoo


def _file(site):
    return next(site.glob("kdzoo_careless*.py")).name


def _line_of(site, text):
    source = (site / _file(site)).read_text().splitlines()
    return next(i for i, line in enumerate(source, 1) if text in line)


def test_a_missing_hookimpl_marker_is_reported_with_file_and_line(site, capsys, monkeypatch, request):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    line, _ = _load_error(site, capsys, THIRD_PARTY.replace("@kdzoo.plugin.hookimpl\n", ""), request)
    assert "'register_strategies' has no @kdzoo.plugin.hookimpl marker" in line
    assert line.endswith(f"{_file(site)}:{_line_of(site, 'def register_strategies')})")
    monkeypatch.setenv("KDZOO_STRICT_PLUGINS", "1")  # strict mode makes it fatal (it was silent before)
    with pytest.raises(PluginError, match="no @kdzoo.plugin.hookimpl marker"):
        load_zoo()


def test_a_misspelt_hook_is_reported_with_file_and_line(site, capsys, monkeypatch, request):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    line, _ = _load_error(site, capsys, THIRD_PARTY.replace("def register_strategies", "def register_stratgies"), request)
    assert "unknown hook 'register_stratgies'; did you mean 'register_strategies'?" in line
    assert line.endswith(f"{_file(site)}:{_line_of(site, 'def register_stratgies')})")


def test_a_wrong_type_config_default_is_reported_at_registration(site, capsys, monkeypatch, request):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    line, zoo = _load_error(site, capsys, THIRD_PARTY.replace("weight: float = 1.0", 'weight: float = "high"'), request)
    assert "strategy 'soft-only-tp': Config.weight: default 'high' is a str, not a float" in line
    assert line.endswith(f"{_file(site)}:{_line_of(site, 'weight: float')})")  # the field's line, not the class's
    assert "soft-only-tp" not in zoo.strategies


def test_a_student_need_that_drops_the_weighted_label_loss_is_reported(site, capsys, monkeypatch, request):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    pooled_only = THIRD_PARTY.replace("    def term_weights(self):", """    def needs(self):
        return kdzoo.plugin.Needs(kdzoo.plugin.Requirement(pooled=True), kdzoo.plugin.Requirement(logits=True))
    def term_weights(self):""")
    line, zoo = _load_error(site, capsys, pooled_only, request)
    assert "strategy 'soft-only-tp': needs() asks the student for no logits, so the hard-label loss (weight 1)" in line
    assert line.endswith(f"{_file(site)}:{_line_of(site, 'def needs')})")  # the method's line, not the class's


def test_load_errors_point_at_the_plugin_line_and_strict_or_debug_print_the_traceback(site, capsys, monkeypatch, request):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("KDZOO_DEBUG", raising=False)
    line, _ = _load_error(site, capsys, "import kdzoo\n\nraise RuntimeError('boom')\n", request)
    assert line.endswith(f"{_file(site)}:3)") and "RuntimeError: boom" in line
    assert main(["plugins", "--debug"]) == 0
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and f'{_file(site)}", line 3' in err
    assert "KDZOO_DEBUG" not in __import__("os").environ  # --debug does not leak out of main()
    monkeypatch.setenv("KDZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="boom"):
        load_zoo()
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_load_plugins_env_filters_entry_points(monkeypatch):
    monkeypatch.setenv("KDZOO_LOAD_PLUGINS", "")
    zoo = load_zoo().collect()
    assert set(zoo.strategies) == {"ce"}  # only kdzoo's built-in plugin


def test_hook_register_models_and_datasets_are_credited(zoo):
    zoo.collect()
    assert {"linear", "mlp", "lenet5"} <= set(zoo.models)
    assert {"digits", "mnist5k", "diabetes", "imagefolder"} <= set(zoo.datasets)
    assert zoo.models["lenet5"].distribution == "kdzoo"


def test_no_import_time_side_effects():
    import subprocess
    import sys

    code = "import kdzoo, sys; assert 'timm' not in sys.modules; print(len(kdzoo.load_zoo().pm.get_plugins()) >= 1)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_a_hook_that_raises_points_at_the_raising_line(site, capsys, monkeypatch, request):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    source = "import kdzoo\n\n@kdzoo.plugin.hookimpl\ndef register_models(register):\n    {}['missing']\n"
    line, zoo = _load_error(site, capsys, source, request)
    assert "KeyError: 'missing'" in line and line.endswith(f"{_file(site)}:5)")
    assert "lenet5" in zoo.models


def test_a_model_name_taken_first_leaves_out_only_that_model(site, capsys, monkeypatch):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    source = THIRD_PARTY + '''
def other_mlp(num_classes, input_shape):
    raise AssertionError("never built: kdzoo's mlp keeps the name")

@kdzoo.plugin.hookimpl
def register_models(register):
    register("mlp", other_mlp)
'''
    write_dist(site, "kdzoo-models", "kdzoo_models", source)
    zoo = load_zoo().collect()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("kdzoo:")]
    line = next(i for i, text in enumerate(source.splitlines(), 1) if "def other_mlp" in text)
    assert err == [f'kdzoo: plugin "kdzoo_models" from kdzoo-models: model \'mlp\' is registered by both kdzoo (plugin '
                   f"kdzoo, kept: loaded first) and kdzoo-models (plugin kdzoo_models), whose model is left out "
                   f"({site / 'kdzoo_models.py'}:{line})"]
    assert zoo.models["mlp"].distribution == "kdzoo" and zoo.strategies["soft-only-tp"].distribution == "kdzoo-models"
    assert zoo.plugins["kdzoo_models"].error is None and len(zoo.plugins["kdzoo_models"].left_out) == 1
    monkeypatch.setenv("KDZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="model 'mlp' is registered by both kdzoo"):
        load_zoo().collect()

"""Discovery through the ``kdzoo`` entry-point group, exactly as for a pip-installed plugin."""

import json
import re
import textwrap

import pytest

from kdzoo.cli import main
from kdzoo.contract.errors import PluginError
from kdzoo.zoo.plugins import load_zoo

THIRD_PARTY = '''
from dataclasses import dataclass
import torch.nn.functional as F
import kdzoo

@dataclass
class Cfg:
    weight: float = 1.0

class SoftOnly(kdzoo.Strategy):
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

@kdzoo.hookimpl
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
    write_dist(site, "kdzoo-typo", "kdzoo_typo", "import kdzoo\n@kdzoo.hookimpl\ndef register_strategy(register):\n    pass\n")
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


def test_two_plugins_registering_one_name_is_fatal_in_strict_mode(site, monkeypatch):
    write_dist(site, "kdzoo-clash", "kdzoo_clash", THIRD_PARTY.replace('"soft-only-tp"', '"kd"'), entry_name="zz_clash")
    monkeypatch.setenv("KDZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"'kd' is registered by both kdzoo-logit .* and kdzoo-clash"):
        load_zoo().collect()


def _clashing(tag):
    """A plugin registering ``clash-tp`` (the strategy's docstring says which plugin it came from) and ``own-TAG``."""
    return THIRD_PARTY.replace('"soft-only-tp"', '"clash-tp"').replace("a third-party test strategy", tag) + f'''
class Own(SoftOnly):
    """Only in {tag}."""
    name = "own-{tag}"

@kdzoo.hookimpl(specname="register_strategies")
def register_own(register):
    register(Own)
'''


@pytest.mark.parametrize("first", ["alpha", "beta"])
def test_name_clash_first_registration_wins_and_the_later_plugin_is_reported(site, capsys, monkeypatch, first):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    later = "beta" if first == "alpha" else "alpha"
    # entry points load by name: "a_..." before "b_..."
    write_dist(site, f"kdzoo-{first}", f"kdzoo_{first}", _clashing(first), entry_name=f"a_{first}")
    write_dist(site, f"kdzoo-{later}", f"kdzoo_{later}", _clashing(later), entry_name=f"b_{later}")
    zoo = load_zoo().collect()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("kdzoo: plugin")]
    assert len(err) == 1, err
    assert f'"b_{later}" from kdzoo-{later}' in err[0] and f"kdzoo-{first}" in err[0] and "'clash-tp'" in err[0]
    assert re.search(rf"kdzoo_{later}\.py:\d+\)$", err[0]), err[0]  # points at the clashing class
    assert zoo.strategies["clash-tp"].distribution == f"kdzoo-{first}"
    assert first in zoo.strategies["clash-tp"].obj.__doc__
    assert f"own-{first}" in zoo.strategies and f"own-{later}" not in zoo.strategies  # a failed plugin adds nothing
    assert {"kd", "ce"} <= set(zoo.strategies)
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[f"b_{later}"]["error"] and rows[f"a_{first}"]["error"] is None and rows["logit"]["error"] is None
    assert main(["strategies", "--json"]) == 0


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
    line, _ = _load_error(site, capsys, THIRD_PARTY.replace("@kdzoo.hookimpl\n", ""), request)
    assert "'register_strategies' has no @kdzoo.hookimpl marker" in line
    assert line.endswith(f"{_file(site)}:{_line_of(site, 'def register_strategies')})")
    monkeypatch.setenv("KDZOO_STRICT_PLUGINS", "1")  # strict mode makes it fatal (it was silent before)
    with pytest.raises(PluginError, match="no @kdzoo.hookimpl marker"):
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
    assert line.endswith(f"{_file(site)}:{_line_of(site, 'class SoftOnly')})")
    assert "soft-only-tp" not in zoo.strategies


def test_a_student_need_that_drops_the_weighted_label_loss_is_reported(site, capsys, monkeypatch, request):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    pooled_only = THIRD_PARTY.replace("    def term_weights(self):", """    def needs(self):
        return kdzoo.Needs(kdzoo.Requirement(pooled=True), kdzoo.Requirement(logits=True))
    def term_weights(self):""")
    line, zoo = _load_error(site, capsys, pooled_only, request)
    assert "strategy 'soft-only-tp': needs() asks the student for no logits, so the hard-label loss (weight 1)" in line
    assert line.endswith(f"{_file(site)}:{_line_of(site, 'class SoftOnly')})")


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
    source = "import kdzoo\n\n@kdzoo.hookimpl\ndef register_models(register):\n    {}['missing']\n"
    line, zoo = _load_error(site, capsys, source, request)
    assert "KeyError: 'missing'" in line and line.endswith(f"{_file(site)}:5)")
    assert "lenet5" in zoo.models

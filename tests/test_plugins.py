"""Discovery through the ``kdzoo`` entry-point group, exactly as for a pip-installed plugin."""

import json
import textwrap

import pytest

from kdzoo.cli import main
from kdzoo.errors import PluginError
from kdzoo.plugins import load_zoo

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


def test_two_plugins_registering_one_name_is_an_error_naming_both(site):
    clash = THIRD_PARTY.replace('"soft-only-tp"', '"kd"')
    write_dist(site, "kdzoo-clash", "kdzoo_clash", clash)
    with pytest.raises(PluginError, match=r"'kd' is registered by both .*kdzoo-(logit|clash).*kdzoo-(logit|clash)"):
        load_zoo().collect()


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

"""registry.yaml stays in step with what is installed."""

from pathlib import Path

import tomllib

from kdzoo.zoo.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_registry_is_the_repo_registry():
    import yaml

    assert load_registry() == yaml.safe_load((ROOT / "registry.yaml").read_text())


def test_every_in_repo_strategy_is_catalogued_with_its_family_and_plugin(zoo):
    reg = load_registry()
    zoo.collect()
    in_repo = {name: e for name, e in zoo.strategies.items() if e.distribution in reg["plugins"]}
    assert set(in_repo) == set(reg["strategies"]), "registry.yaml and installed in-repo strategies differ"
    for name, entry in in_repo.items():
        row = reg["strategies"][name]
        assert row["plugin"] == entry.distribution and row["family"] == entry.obj.family
        assert row["paper"] == entry.obj.paper


def test_every_in_repo_reference_is_catalogued_with_its_plugin(zoo):
    reg = load_registry()
    in_repo = {name: e for name, e in zoo.collect().references.items() if e.distribution in reg["plugins"]}
    assert {n: e.distribution for n, e in in_repo.items()} == {n: r["plugin"] for n, r in reg["references"].items()}


def test_every_in_repo_plugin_dir_declares_a_kdzoo_entry_point():
    reg = load_registry()
    dirs = {p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml")}
    assert dirs == {n for n, p in reg["plugins"].items() if p["tier"] == "in-repo"}
    for name in dirs:
        meta = tomllib.loads((ROOT / "plugins" / name / "pyproject.toml").read_text())
        assert meta["project"]["name"] == name and meta["project"]["entry-points"]["kdzoo"]

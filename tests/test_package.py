"""kdzoo as a package: the wheels build, `pip install "kdzoo[all]"` resolves from them alone, and the
installed commands work from outside the repository; the locks that guard teachers and bench cells.

The wheel test reuses the installed third-party packages (torch is 4 GB): the fresh venv sees a
folder of links to this interpreter's site-packages, minus every kdzoo distribution, so pip resolves
`kdzoo[all]` from the built wheels and finds torch & co. already installed; nothing is downloaded
(``--no-index``) and no repository source is on the path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import yaml

from kdzoo.bench.claims import Claim
from kdzoo.train.teacher import teacher_lock

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
NOT_SOURCE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", "tests", "experiments")
VERSION_RANGE = ">=0.2,<0.3"


def _copy_source(src: Path, dest: Path) -> Path:
    """A clean copy to build from, so building leaves no ``build/`` or ``*.egg-info`` in the repo."""
    shutil.copytree(src, dest, ignore=NOT_SOURCE, symlinks=False)
    return dest


def _without_kdzoo(site: Path, dest: Path) -> Path:
    """``dest``: links to every entry of ``site`` except kdzoo's own distributions and their editable hooks."""
    dest.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("kdzoo", "__editable__", "_kdzoo")) or name.endswith(".pth"):
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with kdzoo[all] installed from freshly built wheels; returns (bin dir, env, work dir)."""
    if os.name != "posix":
        pytest.skip("the venv layout below is POSIX's")
    tmp = tmp_path_factory.mktemp("wheels")
    sources = [_copy_source(ROOT, tmp / "src" / "kdzoo")]
    shutil.rmtree(sources[0] / "plugins")
    shutil.rmtree(sources[0] / "benchmarks")
    shutil.rmtree(sources[0] / "docs")
    sources += [_copy_source(p, tmp / "src" / p.name) for p in PLUGINS]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "wheels"),
                    *map(str, sources)], check=True, capture_output=True, cwd=tmp)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                      check=True, capture_output=True, text=True).stdout.strip())
    deps = _without_kdzoo(Path(sysconfig.get_paths()["purelib"]), tmp / "deps")
    (target_site / "third_party.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(KDZOO_CACHE=str(tmp / "cache"), OMP_WAIT_POLICY="PASSIVE", PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    result = subprocess.run([*pip, "--python", str(python), "install", "-q", "--no-index", "--find-links",
                             str(tmp / "wheels"), "kdzoo[all]"], capture_output=True, text=True, env=env, cwd=tmp)
    assert result.returncode == 0, result.stderr
    work = tmp / "work"
    work.mkdir()
    return venv / "bin", env, work


def _run(installed, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    bin_dir, env, work = installed
    result = subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, env=env, cwd=work,
                            timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}: {result.stderr[-2000:]}"
    return result


@pytest.mark.slow
def test_kdzoo_all_installs_every_in_repo_family_from_wheels_without_the_repository(installed):
    probe = textwrap.dedent("""
        import importlib.metadata as md, json, kdzoo
        dists = {d.metadata["Name"]: d for d in md.distributions() if d.metadata["Name"].startswith("kdzoo")}
        print(json.dumps({"file": kdzoo.__file__, "dists": sorted(dists),
                          "requires": {n: d.requires or [] for n, d in dists.items()},
                          "urls": dists["kdzoo"].metadata.get_all("Project-URL")}))
    """)
    info = json.loads(_run(installed, "python", "-c", probe).stdout)
    assert str(ROOT) not in info["file"] and "site-packages" in info["file"]
    assert info["dists"] == sorted(["kdzoo", *(p.name for p in PLUGINS)])
    for plugin in PLUGINS:  # each plugin states the contract version it implements
        assert any(r.replace(" ", "").startswith("kdzoo") and "<0.3" in r and ">=0.2" in r
                   for r in info["requires"][plugin.name]), info["requires"][plugin.name]
    assert any(u.startswith("Source, https://") for u in info["urls"])
    version = _run(installed, "kdzoo", "--version").stdout
    assert all(plugin.name in version for plugin in PLUGINS), version


@pytest.mark.slow
def test_installed_kdzoo_distils_with_a_plugin_strategy_and_benches_from_outside_the_repository(installed):
    work = installed[2]
    _run(installed, "kdzoo", "distill", "--teacher", "mlp", "--student", "linear", "--strategy", "kd", "--data",
         "digits", "--steps", "1", "--seeds", "0", "--set", "teacher_train.epochs=1", "--no-progress",
         "--out", "runs", "--name", "one-step")
    summary = json.loads((work / "runs" / "one-step" / "summary.json").read_text())
    assert summary["seeds"]["0"]["steps"] == 1
    suite = {"name": "tiny", "seeds": [0], "tasks": [{
        "name": "digits", "data": {"name": "digits", "labels_per_class": 5}, "steps": 2, "teacher_train": {"epochs": 1},
        "pairs": [{"teacher": "mlp", "student": "linear"}], "strategies": ["ce", "kd", "dkd"]}]}
    (work / "tiny.yaml").write_text(yaml.safe_dump(suite))
    out = _run(installed, "kdzoo", "bench", "--suite", "tiny.yaml", "--no-progress", "--out", "bench").stdout
    assert "dkd" in out and "failed" not in out
    assert not (work / "runs" / "one-step" / "summary.json").is_relative_to(ROOT)


# -- the locks ----------------------------------------------------------------------------------------
def test_every_kdzoo_package_is_listed_for_the_wheel():
    """A sub-package missing from ``[tool.setuptools] packages`` imports from the repository but is absent from
    the wheel (the wheel tests above would catch it, slowly)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "kdzoo").rglob("__init__.py")
             if "__pycache__" not in p.parts}
    assert found == listed, (sorted(found - listed), sorted(listed - found))


def test_a_claimed_bench_cell_is_busy_for_another_process_which_sees_the_owner(tmp_path):
    claim_file = tmp_path / "cell.claim"
    other = "from kdzoo.bench.claims import Claim\nimport json, sys\n" \
            "with Claim(sys.argv[1]) as c: print(json.dumps([c.acquired, c.owner]))"
    with Claim(claim_file) as claim:
        assert claim.acquired
        acquired, owner = json.loads(subprocess.run([sys.executable, "-c", other, str(claim_file)], check=True,
                                                    capture_output=True, text=True).stdout)
        assert not acquired and owner["pid"] == os.getpid()
    assert not claim_file.exists()  # no record of a finished owner is left
    acquired, _ = json.loads(subprocess.run([sys.executable, "-c", other, str(claim_file)], check=True,
                                            capture_output=True, text=True).stdout)
    assert acquired


def test_teacher_lock_makes_a_second_process_wait_and_say_so(tmp_path):
    waiter = "from kdzoo.train.teacher import teacher_lock\nimport sys\nfrom pathlib import Path\n" \
             "with teacher_lock(Path(sys.argv[1]), 'key'): print('got it')"
    with teacher_lock(tmp_path, "key", log=lambda *a: None):
        proc = subprocess.Popen([sys.executable, "-u", "-c", waiter, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # printed once it found the lock taken
        assert "another process is training it; waiting" in first and proc.poll() is None
    out, _ = proc.communicate(timeout=60)
    assert out.strip() == "got it"


def test_a_missing_in_repo_family_is_installed_through_kdzoos_extra():
    from kdzoo.zoo.registry import install_hint

    assert install_hint("kdzoo-feature") == "'kdzoo[feature]'"  # served wherever kdzoo is, at its contract version
    assert install_hint("kdzoo-wandb") == "kdzoo-wandb"  # not in-repo: the distribution itself
    assert install_hint(None) == "the plugin providing it"

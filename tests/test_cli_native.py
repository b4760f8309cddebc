"""A command line that feels native: --version, torch-free --help and listings, completion, closed pipes,
JSON alone on stdout, plugin subcommands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from kdzoo.cli import _parser, main
from kdzoo.zoo.listing import fingerprint, listing

COMMAND = '''
import kdzoo
import kdzoo.plugin

def arguments(parser):
    parser.add_argument("--name", required=True)

def hello(args):
    print(f"hello {args.name}")
    return 3

@kdzoo.plugin.hookimpl
def register_commands(register):
    register("hello-tp", hello, setup=arguments, help="greet (a third-party test command)")
'''


def _kdzoo(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "kdzoo", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **kwargs)


def _write_dist(root, dist, module, source):
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[kdzoo]\n{module} = {module}\n")


def test_version(capsys):
    import importlib.metadata as md

    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"kdzoo {md.version('kdzoo')}"
    plugins = {ep.dist.name: ep.dist.version for ep in md.entry_points(group="kdzoo")}
    assert "kdzoo-logit" in plugins and lines[1:] == [f"  {name} {plugins[name]}" for name in sorted(plugins)]


@pytest.mark.slow
def test_help_and_listings_import_no_torch_once_the_listing_is_cached():
    assert _kdzoo("strategies").returncode == 0  # builds the snapshot (loads the plugins) if needed
    probe = ("import sys; from kdzoo.cli import main; code = main(sys.argv[1:]); "
             "assert 'torch' not in sys.modules, 'torch imported'; raise SystemExit(code)")
    for args in (["--help"], ["strategies"], ["strategies", "--json"], ["models"], ["datasets"], ["plugins"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout.strip(), args


def test_listing_snapshot_follows_the_installed_plugins(tmp_path, monkeypatch, capsys):
    before = fingerprint()
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    _write_dist(site, "kdzoo-hello", "kdzoo_hello_tp", COMMAND)
    assert fingerprint() != before  # a new distribution is a new snapshot
    assert [c["name"] for c in listing()["commands"]] == ["datafree-curve", "hello-tp"]


def test_hook_register_commands_plugin_subcommand_is_in_help_and_runs(tmp_path, monkeypatch, capsys):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    _write_dist(site, "kdzoo-hello", "kdzoo_hello_tp", COMMAND)
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "hello-tp" in out and "greet (a third-party test command) [kdzoo-hello]" in " ".join(out.split())
    assert main(["hello-tp", "--name", "zoo"]) == 3
    assert capsys.readouterr().out == "hello zoo\n"
    assert main(["hello-tp"]) == 2  # its own arguments are checked, in one line
    err = capsys.readouterr().err
    assert err.startswith("kdzoo: error: kdzoo hello-tp:") and "--name" in err and err.count("\n") == 1


def test_datafree_plugin_tool_is_a_kdzoo_command(tmp_path, capsys):
    seed = tmp_path / "run" / "seed-0"
    seed.mkdir(parents=True)
    (seed / "metrics.jsonl").write_text(json.dumps({"step": 1, "val/acc": 10.0}) + "\n"
                                        + json.dumps({"step": 2, "val/acc": 20.0}) + "\n")
    assert main(["datafree-curve", str(tmp_path / "run")]) == 0
    assert (seed / "curve.png").is_file()


def test_strategies_into_a_closed_pipe_exits_0():
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m kdzoo strategies | head -1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1 and "Traceback" not in done.stderr
    # the reader gone before the first write: still 0 and quiet
    proc = subprocess.Popen([sys.executable, "-m", "kdzoo", "strategies"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    assert proc.wait(timeout=300) == 0 and b"Traceback" not in proc.stderr.read()


@pytest.mark.slow
def test_teacher_json_is_alone_on_stdout(tmp_path):
    done = _kdzoo("teacher", "--teacher", "mlp", "--data", "digits", "--epochs", "1", "--no-progress",
                  env={"KDZOO_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # nothing but the JSON line
    assert result["name"] == "mlp" and "teacher mlp" in done.stderr


def test_completion_offers_strategies_stacks_models_and_datasets(capsys):
    snapshot = listing()
    parser = _parser(snapshot)
    distill = parser._subparsers._group_actions[0].choices["distill"]
    actions = {a.dest: a for a in distill._actions}
    assert "weight-selection+kd" in actions["strategy"].completer("weight-selection+k")
    assert actions["strategy"].completer("kd+k") == []  # a member is not offered twice
    assert {"lenet5", "test_resnet"} <= set(actions["student"].completer(""))
    assert actions["data"].completer("mnist") == ["mnist", "mnist5k"]
    argcomplete = pytest.importorskip("argcomplete")
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "kdzoo" in script and "_ARGCOMPLETE" in script
    assert argcomplete is not None


def test_a_multi_seed_run_shows_one_eta_over_every_seed(tmp_path, capsys):
    code = main(["distill", "--student", "linear", "--strategy", "ce", "--data", "digits", "--steps", "4",
                 "--seeds", "0,1,2", "--out", str(tmp_path), "--name", "eta"])
    assert code == 0
    err = capsys.readouterr().err  # not a terminal here: plain progress lines
    totals = set(re.findall(r" \d+/(\d+) steps done", err))
    assert totals == {"12"}, totals  # one count of 3 seeds x 4 steps, not a bar (and an ETA) per seed
    assert "ce 3 seeds: 0/12 steps done" in err and "12/12 steps done" in err

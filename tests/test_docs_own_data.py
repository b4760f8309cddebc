"""docs/own-models-and-data.md: its runnable examples run as written (in a scratch folder)."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "own-models-and-data.md"
RUN_MARK = re.compile(r"^<!-- run: (\w+) -->\n```python\n(.*?)^```$", re.S | re.M)


def blocks() -> dict[str, str]:
    return {m.group(1): m.group(2) for m in RUN_MARK.finditer(DOC.read_text())}


def test_the_page_has_both_examples_and_the_readme_links_it():
    assert set(blocks()) == {"python", "cli"}
    assert "docs/own-models-and-data.md" in (DOC.parents[1] / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["python", "cli"])
def test_example_runs(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "cache"))
    exec(compile(blocks()[name], f"{DOC.name} ({name} example)", "exec"), {"__name__": f"doc_{name}"})
    assert list((tmp_path / "runs").glob("*/summary.json")), capsys.readouterr().out

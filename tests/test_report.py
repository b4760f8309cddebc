"""The bench report is fit to read: plots checked on their figures, the HTML page in a real headless browser
at 800 and 1280 px."""

import itertools
import json
import os
import random
import re
import shutil
from pathlib import Path

import pytest
from matplotlib.text import Text

from kdzoo.bench.plots import figures
from kdzoo.bench.report import aggregate, markdown, open_report, rows_from_csv, write_outputs
from kdzoo.contract.errors import ConfigError

TASKS = ("fashion-all-labels", "fashion-100-labels-per-class")
PAIR = "cnn(width=2.0,batchnorm=true) -> small-cnn(width=0.25)"


def synthetic_results(rows_per_task: int = 24, seeds: int = 5) -> dict:
    """Bench results with many long-named rows, a teacher and a reference line (no training needed)."""
    rng = random.Random(0)
    rows = []
    for task in TASKS:
        for v in range(rows_per_task):
            variant = "ce" if v == 0 else f"weight-selection+kd(temperature={v}.0,alpha=0.{v % 10})"
            for seed in range(seeds):
                acc = 80 + v * 0.4 + rng.gauss(0, 1.5)
                row = {"task": task, "pair": PAIR, "variant": variant, "seed": seed, "key": f"{task}{v}{seed}",
                       "status": "ok", "test_best_acc": acc, "test_last_acc": acc - 0.3, "agreement": acc + 2,
                       "test_best_ece": 0.05, "train_cpu_seconds": 30 + v + rng.random(), "ms_per_step": 4.0,
                       "teacher_test": {"acc": 99.5}, "student_params": 1234, "flops": 2_674_800,
                       "extra_params": 288 * v, "latency_ms": 0.2,
                       "curve": {"metric": "acc", "split": "val", "step": [10, 20, 30],
                                 "value": [acc - 20, acc - 5, acc]}}
                if v % 3 == 1:  # as `kdzoo tune` marks a tuned cell
                    row["tuned"] = {"trials": 40, "pruned": 12, "study": "studies/x.db", "params": {"lr": 0.01}}
                rows.append(row)
        rows.append({"task": task, "pair": PAIR, "variant": "teacher-feature-probe (reference)", "seed": None,
                     "key": f"{task}-ref", "kind": "reference", "status": "ok", "test_best_acc": 60.0})
    return {"suite": "synthetic", "versions": {"kdzoo": "test"}, "rows": rows, "summary": aggregate(rows)}


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_plot_labels_never_overlap_and_axes_show_baseline_and_error_bars_in_full():
    import matplotlib.pyplot as plt

    results = synthetic_results()
    made = figures(results)
    assert [name for name, _, _ in made] == ["accuracy_0.png", "cost_0.png", "curves_0.png",
                                             "accuracy_1.png", "cost_1.png", "curves_1.png"]
    for name, task, fig in made:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        page = fig.bbox
        ax = fig.axes[0]
        text = fig.get_suptitle()
        title = next(c for c in fig.get_children() if hasattr(c, "get_text") and c.get_text() == text)
        title = title.get_window_extent(renderer)
        assert task in text.replace("\n", " ") and PAIR in text.replace("\n", " ")
        assert page.x0 <= title.x0 and title.x1 <= page.x1 and title.y1 <= page.y1, f"{name}: title cut off"
        for axis in (ax.yaxis, ax.xaxis):
            low, high = sorted(axis.get_view_interval())
            shown = [t.label1 for t in axis.get_major_ticks() if low <= t.get_loc() <= high]  # drawn ones only
            boxes = [t.get_window_extent(renderer) for t in shown if t.get_visible() and t.get_text()]
            assert len(boxes) >= 2, name
            for a, b in itertools.combinations(boxes, 2):
                assert not _overlap(a, b), f"{name}: tick labels overlap"
            for box in boxes:
                assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, name
        for legend in fig.legends:
            box = legend.get_window_extent(renderer)
            assert page.y0 <= box.y0 and not _overlap(box, ax.get_window_extent(renderer)), f"{name}: legend"
            assert page.x0 <= box.x0 and box.x1 <= page.x1, f"{name}: legend cut at the side"
        if name.startswith("cost"):  # the scatter: one label per strategy, in a column, none touching another
            labels = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the text, not its leader line
            assert len(labels) == 24, name
            for a, b in itertools.combinations(labels, 2):
                assert not _overlap(a, b), f"{name}: point labels overlap"
            for box in labels:
                assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, name
            assert ax.get_xlabel().startswith("training CPU seconds") and ax.get_ylabel().startswith("test acc")
        if name.startswith("accuracy"):
            assert len(ax.get_yticklabels()) == 24
            low, high = ax.get_xlim()
            entries = [e for e in results["summary"] if e["task"] == task and e.get("kind") != "reference"]
            ends = [m + d * s for e in entries for m, s in [e["test_best_acc"]] for d in (-1, 1)]
            assert low < min(ends) and max(ends) < high, f"{name}: an error bar is cut off"
            ce = next(e for e in entries if e["variant"] == "ce")["test_best_acc"][0]
            assert low < ce < high and low < 99.5 < high and low < 60.0 < high  # baseline, teacher, reference
        plt.close(fig)


def _chromium() -> str | None:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    for path in ("/usr/lib/chromium-headless-shell/chromium-headless-shell", "/usr/lib/chromium/chromium"):
        if os.access(path, os.X_OK):
            return path
    return None


SCREENSHOT_800 = os.environ.get("KDZOO_REPORT_SCREENSHOT")  # keep the 800-px screenshot there, to look at it

# Per table: its width against its scroll container's, the container's overflow, whether scrolling moves it,
# and whether any ancestor clips it (overflow hidden); per verdict cell, the lines its content takes.
LAYOUT_JS = """() => {
  const lines = el => {  // distinct line tops of the cell's text (not of the badge's box)
    const tops = new Set(), walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
      const range = document.createRange(); range.selectNodeContents(node);
      for (const r of range.getClientRects()) if (r.height > 0) tops.add(Math.round(r.top));
    }
    return tops.size;
  };
  const clippedBy = el => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (a.classList.contains('scroll')) continue;
      if (getComputedStyle(a).overflowX === 'hidden') return a.tagName;
    }
    return null;
  };
  const tables = [...document.querySelectorAll('table')].map(t => {
    const box = t.parentElement, before = box.scrollLeft;
    box.scrollLeft = 60; const moved = box.scrollLeft > before; box.scrollLeft = before;
    return {cls: t.className, task: t.dataset.task, rows: t.querySelectorAll('tr').length, width: t.scrollWidth,
            box: box.clientWidth, boxClass: box.className, overflowX: getComputedStyle(box).overflowX, moved,
            clipped: clippedBy(t)};
  });
  return {page: document.documentElement.scrollWidth, view: window.innerWidth, tables,
          verdictLines: [...document.querySelectorAll('td.verdict')].map(lines),
          beats: document.querySelectorAll('.badge.beats').length,
          badgeTitles: [...document.querySelectorAll('td.verdict .badge[title]')].map(b => b.title),
          header: document.querySelector('header.run').innerText,
          images: [...document.images].map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])};
}"""


def test_html_report_in_a_headless_browser(tmp_path):
    """At 800 and 1280 px: no console error, the page never wider than the window, the wide tables scroll
    inside their own container (never clipped), every verdict cell on at most two lines, every image decoded,
    one table per task; the run's facts in the header, the Holm-adjusted p where the page says so."""
    ci = os.environ.get("CI") == "true"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if ci:
            pytest.fail("playwright is not installed (pip install -e '.[test]')")
        pytest.skip("playwright is not installed")
    browser_path = _chromium()
    if browser_path is None:
        if ci:
            pytest.fail("no chromium browser found (apt-get install chromium-headless-shell)")
        pytest.skip("no chromium browser (apt-get install chromium-headless-shell or chromium)")
    results = synthetic_results()
    results["provenance"] = {"command": "kdzoo bench --suite synthetic --jobs 2", "date": "2026-12-07T04:00:00Z",
                             "host": {"name": "box", "cores": 2, "cpu": "Xeon", "memory_gib": 24.0,
                                      "os": "Linux-6.1", "python": "3.11.7"},
                             "git_commit": "0123456789ab", "versions": {"kdzoo": "0.9", "torch": "2.14.1",
                                                                         "timm": "1.0.31", "kdzoo-logit": "0.9"}}
    write_outputs(results, tmp_path)
    problems, layouts = [], {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            for width in (800, 1280):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto((tmp_path / "report.html").resolve().as_uri())
                page.wait_for_load_state("load")
                layouts[width] = page.evaluate(LAYOUT_JS)
                shot = tmp_path / f"report-{width}.png"
                page.screenshot(path=str(shot), full_page=width == 800)
                if width == 800 and SCREENSHOT_800:
                    shutil.copy(shot, SCREENSHOT_800)
                page.close()
        finally:
            browser.close()
    assert not problems, problems
    for width, got in layouts.items():
        assert got["page"] <= got["view"], f"{width} px: the page is {got['page']} px wide"
        for t in got["tables"]:
            assert t["boxClass"] == "scroll" and t["overflowX"] in ("auto", "scroll") and t["clipped"] is None, (width, t)
            if t["width"] > t["box"]:  # wider than its container: the container scrolls it
                assert t["moved"], (width, t)
        assert got["verdictLines"] and max(got["verdictLines"]) <= 2, (width, got["verdictLines"])
        assert min(got["verdictLines"]) == 0 and sorted(set(got["verdictLines"]))[-1] == 1  # empty or one line
        assert len(got["images"]) == 6 and all(done and w > 0 and h > 0 for _, done, w, h in got["images"])
    assert any(t["width"] > t["box"] for t in layouts[800]["tables"])  # the synthetic table is wider than 800 px
    main = [t for t in layouts[1280]["tables"] if t["cls"] == "task-table"]
    assert sorted(t["task"] for t in main) == sorted(TASKS)
    assert all(t["rows"] == 27 for t in main)  # header, teacher, 24 strategies, the reference
    header = layouts[1280]["header"].replace("\xa0", " ")
    for fact in ("kdzoo bench --suite synthetic --jobs 2", "2026-12-07T04:00:00Z", "box (2 cores, Xeon, 24 GiB",
                 "0123456789ab", "torch 2.14.1", "kdzoo-logit 0.9"):
        assert fact in header, fact
    assert "{" not in header  # facts, not a raw JSON line
    assert layouts[1280]["beats"] > 0
    # where the page speaks of the Holm-adjusted p, the p it shows is the adjusted one
    adjusted = {e["variant"]: e["vs_ce"] for e in results["summary"] if e.get("vs_ce") and e["task"] == TASKS[0]}
    v = adjusted["weight-selection+kd(temperature=1.0,alpha=0.1)"]
    assert v["p_adjusted"] > v["p"]
    title = next(t for t in layouts[1280]["badgeTitles"] if "Holm-adjusted p" in t and "over 23 rows" in t)
    assert "uncorrected" not in " ".join(layouts[1280]["badgeTitles"])
    assert title
    assert (tmp_path / "report-800.png").stat().st_size > 10_000


def test_results_md_one_table_per_task_with_details_costs_and_linked_plots(tmp_path):
    """results.md: per task a heading with task and pair, a narrow main table (the pair never in a row),
    the verdict as a word with its CI and adjusted p in a <details> block, costs in a second table, the
    tuned marker, and every plot linked."""
    results = synthetic_results(rows_per_task=4, seeds=3)
    write_outputs(results, tmp_path)
    md = (tmp_path / "results.md").read_text()
    sections = md.split("\n## ")[1:]
    assert [s.splitlines()[0] for s in sections] == list(TASKS)
    first = sections[0]
    assert first.splitlines()[2] == PAIR
    table = [line for line in first.splitlines() if line.startswith("| ")]
    assert table[0] == ("| strategy | seeds | test acc % (val-selected) | Δ vs ce | vs ce | tuned | "
                        "test acc % (last) | agree % | ECE |")
    assert not any(PAIR in line for line in table)
    kd1 = next(line for line in table if line.startswith("| weight-selection+kd(temperature=1.0"))
    cells = [c.strip() for c in kd1.strip("|").split("|")]
    assert cells[5] == "40 trials, 12 pruned" and cells[4] in ("does not beat", "**beats**", "too few seeds")
    assert "<details><summary>vs ce in full" in first and "| strategy | mean Δ [95% CI] | p (Holm-adjusted) |" in first
    assert "| strategy | params | extra params | FLOPs | ms/img | train CPU s/seed | CPU ms/step |" in first
    assert "| ce | 1,234 | 0 | 2.67 M | 0.200 |" in first
    for name in ("accuracy_0.png", "cost_0.png", "curves_0.png"):
        assert f"]({name})" in first and (tmp_path / name).exists()
    saved = json.loads((tmp_path / "results.json").read_text())
    tuned = next(e for e in saved["summary"] if e["variant"].startswith("weight-selection+kd(temperature=1.0"))
    assert tuned["tuned"]["trials"] == 40 and tuned["curve"]["step"] == [10, 20, 30]
    assert saved["summary"][0]["variant"] == "ce" and "tuned" not in saved["summary"][0]


def test_one_seed_reads_1_seed_not_plus_minus_zero(tmp_path):
    results = synthetic_results(rows_per_task=2, seeds=1)
    md = markdown(results)
    assert "± 0.00" not in md and "± 0.000" not in md
    ce = next(line for line in md.splitlines() if line.startswith("| ce |"))
    assert ce.count("(1 seed)") == 1 and "| 1 | " in ce  # on the accuracy, once; the other columns plain


FASHION = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fashion"


def _shape_and_numbers(text: str) -> tuple[str, list[float]]:
    """A page with its digits masked, and its numbers: floats printed on another CPU may differ in the last digit."""
    numbers = [float(n) for n in re.findall(r"\d+\.\d+", text)]
    return re.sub(r"\d", "#", text), numbers


@pytest.mark.parametrize("page", ["results", "breadth"])
def test_committed_fashion_pages_rebuild_from_their_json(tmp_path, page):
    """`kdzoo report` rebuilds each committed page from its JSON alone (the per-seed rows, or the published
    table where those were not kept) into the committed Markdown, with its plots linked."""
    shutil.copy(FASHION / f"{page}.json", tmp_path / f"{page}.json")
    target = tmp_path if page == "results" else tmp_path / f"{page}.json"
    html_path = open_report(target, open_browser=False)
    assert html_path.name == ("report.html" if page == "results" else f"{page}.html")
    got, want = ((d / f"{page}.md").read_text() for d in (tmp_path, FASHION))
    got_shape, got_numbers = _shape_and_numbers(got)
    want_shape, want_numbers = _shape_and_numbers(want)
    assert got_shape == want_shape
    assert got_numbers == pytest.approx(want_numbers, abs=0.0011)
    links = re.findall(r"\]\(([\w-]+\.png)\)", want)
    assert links and all((FASHION / name).exists() and (tmp_path / name).exists() for name in links)


def test_results_csv_round_trips_and_keeps_the_teacher_and_tuned_marker(tmp_path):
    results = synthetic_results(rows_per_task=3, seeds=3)
    write_outputs(results, tmp_path)
    back = rows_from_csv((tmp_path / "results.csv").read_text())
    assert len(back) == len(results["rows"])
    tuned = next(r for r in back if r.get("tuned"))
    assert tuned["tuned"] == {"trials": 40, "pruned": 12} and tuned["teacher_test"] == {"acc": 99.5}
    again = {(e["variant"], e["task"]): e for e in aggregate(back)}
    for e in results["summary"]:
        if e.get("vs_ce"):
            assert again[(e["variant"], e["task"])]["vs_ce"]["p_adjusted"] == pytest.approx(e["vs_ce"]["p_adjusted"])


def test_report_of_a_folder_without_results_is_one_line_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"'.*nothing' has no results.json \(not a kdzoo bench directory"):
        open_report(tmp_path / "nothing", open_browser=False)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="is not a kdzoo results file"):
        open_report(tmp_path / "bad.json", open_browser=False)
    assert not (tmp_path / "bad.md").exists()


def test_kdzoo_report_takes_a_results_json_file_and_prints_the_page(tmp_path, capsys, monkeypatch):
    import webbrowser

    from kdzoo.cli import main

    monkeypatch.setattr(webbrowser, "open", lambda *a, **k: True)  # no tab on a developer's desktop

    shutil.copy(FASHION / "breadth.json", tmp_path / "breadth.json")
    assert main(["report", str(tmp_path / "breadth.json")]) == 0
    assert capsys.readouterr().out.strip().endswith("breadth.html")
    assert (tmp_path / "breadth.md").exists() and (tmp_path / "breadth-accuracy_0.png").exists()
    assert not (tmp_path / "results.md").exists()

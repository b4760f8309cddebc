"""The bench report is fit to read: plots checked on their figures, the HTML page in a real headless browser."""

import itertools
import os
import random
import shutil

import pytest

from kdzoo.bench.plots import figures
from kdzoo.bench.report import aggregate, write_outputs

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
                rows.append({"task": task, "pair": PAIR, "variant": variant, "seed": seed, "key": f"{task}{v}{seed}",
                             "status": "ok", "test_best_acc": acc, "test_last_acc": acc - 0.3,
                             "train_cpu_seconds": 30 + v + rng.random(), "ms_per_step": 4.0,
                             "teacher_test": {"acc": 99.5}, "student_params": 1234, "latency_ms": 0.2})
        rows.append({"task": task, "pair": PAIR, "variant": "teacher-feature-probe (reference)", "seed": None,
                     "key": f"{task}-ref", "kind": "reference", "status": "ok", "test_best_acc": 60.0})
    return {"suite": "synthetic", "versions": {"kdzoo": "test"}, "rows": rows, "summary": aggregate(rows)}


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_plot_labels_never_overlap_and_axes_show_baseline_and_error_bars_in_full():
    import matplotlib.pyplot as plt

    results = synthetic_results()
    made = figures(results)
    assert [name for name, _, _ in made] == ["accuracy_0.png", "time_0.png", "accuracy_1.png", "time_1.png"]
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


def test_html_report_in_a_headless_browser(tmp_path):
    """No console errors, every image decoded with a non-zero size, one table per task; a screenshot kept."""
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
    write_outputs(results, tmp_path)
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto((tmp_path / "report.html").resolve().as_uri())
            page.wait_for_load_state("load")
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.alt, i.complete, i.naturalWidth, "
                                                     "i.naturalHeight])")
            tables = page.eval_on_selector_all("table.task-table", "ts => ts.map(t => [t.dataset.task, "
                                                                   "t.querySelectorAll('tr').length])")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    print(f"report screenshot: {shot}")
    assert not problems, problems
    assert len(sizes) == 4 and all(done and w > 0 and h > 0 for _, done, w, h in sizes), sizes
    assert sorted(t for t, _ in tables) == sorted(TASKS)
    assert all(n >= 26 for _, n in tables)  # header, teacher, 24 strategies, the reference
    assert shot.stat().st_size > 10_000

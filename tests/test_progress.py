"""Bench progress: one line for the whole suite, plain periodic lines when stdout is not a terminal."""

import io

from kdzoo.progress import PlainProgress, bench_progress, steps_progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_plain_progress_prints_periodic_lines_with_done_total_and_eta():
    out, clock = io.StringIO(), Clock()
    bar = PlainProgress(total=10, done=4, desc="bench fashion", stream=out, interval=30, clock=clock)
    for _ in range(3):  # three cells in 30 s: one line at the 30 s mark, none before
        clock.now += 10
        bar.set_postfix_str("task | pair | kd | seed 0")
        bar.update(1)
    clock.now += 90
    bar.update(3)  # all 10 done: always a final line
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines == [
        "bench fashion: 4/10 cells done, elapsed 0s, ETA unknown",
        "bench fashion: 7/10 cells done, elapsed 30s, ETA 30s (last: task | pair | kd | seed 0)",
        "bench fashion: 10/10 cells done, elapsed 2m00s, ETA 0s (last: task | pair | kd | seed 0)",
    ]


def test_a_terminal_gets_one_redrawn_bar_and_a_pipe_plain_lines():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(bench_progress(5, 0, "bench x", io.StringIO()), PlainProgress)
    bar = bench_progress(5, 2, "bench x", Terminal())
    try:
        assert bar.n == 2 and bar.total == 5 and not isinstance(bar, PlainProgress)
    finally:
        bar.close()


def test_a_run_written_to_a_log_gets_plain_step_lines_not_redraws(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "run.log"
    with open(log, "w") as out:  # stderr is a file, as under nohup or CI
        subprocess.run([sys.executable, "-m", "kdzoo", "distill", "--student", "linear", "--data", "digits",
                        "--steps", "20", "--seeds", "0,1", "--out", str(tmp_path / "runs")], stdout=out, stderr=out,
                       check=True)
    text = log.read_text()
    assert "\r" not in text
    assert "ce 2 seeds: 0/40 steps done" in text and "ce seed 1: 40/40 steps done" in text


def test_steps_progress_is_tqdm_on_a_terminal_and_plain_lines_elsewhere():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(steps_progress(10, 0, "kd", io.StringIO()), PlainProgress)
    bar = steps_progress(10, 3, "kd", Terminal())
    assert not isinstance(bar, PlainProgress) and bar.n == 3
    bar.close()

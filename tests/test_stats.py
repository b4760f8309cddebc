"""The paired verdict: a one-sided paired t-test, its error rate under the null, its power, Holm."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from kdzoo.contract.errors import ConfigError
from kdzoo.bench import metrics
from kdzoo.bench.metrics import ALPHA, MIN_SEEDS, compare, holm, holm_correct, verdict_power
from kdzoo.bench.report import aggregate, markdown


def t_sf_df2(t: float) -> float:
    """P(T > t) for Student's t with 2 degrees of freedom, in closed form: 1/2 - t / (2 sqrt(2 + t^2))."""
    return 0.5 - t / (2 * math.sqrt(2 + t * t))


# -- the t-test against hand-worked values ----------------------------------------------------------
def test_p_value_and_interval_match_a_hand_computed_t_test():
    # differences 2, 3, 1, 4: mean 2.5, sample variance 5/3, s.e. sqrt(5/3)/2, t = sqrt(15), 3 d.o.f.
    a = {0: 3.0, 1: 5.0, 2: 4.0, 3: 6.0}
    b = {0: 1.0, 1: 2.0, 2: 3.0, 3: 2.0}
    c = compare(a, b)
    # Student's t with 3 d.o.f.: P(T > t) = 1/2 - (t / (sqrt(3) (1 + t^2/3)) + atan(t / sqrt(3))) / pi;
    # at t = sqrt(15): t / sqrt(3) = sqrt(5) and 1 + t^2/3 = 6.
    expected_p = 0.5 - (math.sqrt(5) / 6 + math.atan(math.sqrt(5))) / math.pi  # 0.01523...
    assert c.p == pytest.approx(expected_p, rel=1e-9)
    assert c.p == pytest.approx(0.015234, abs=1e-6)
    half = 3.182446 * math.sqrt(5 / 3) / 2  # t_{0.975, 3} from a t table times the s.e.
    assert (c.ci_low, c.ci_high) == (pytest.approx(2.5 - half, abs=1e-5), pytest.approx(2.5 + half, abs=1e-5))
    assert (c.verdict, c.beats, c.mean_diff, c.wins, c.n) == ("beats", True, 2.5, 4, 4)
    assert c.line("A", "B") == ("A beats B: mean paired difference +2.50 (95% CI +0.45 to +4.55), "
                                "one-sided paired t-test p = 0.015, wins 4/4 seeds")


def test_every_seed_winning_is_not_enough_on_its_own():
    # 3/3 wins happens 1 time in 8 by chance; the old rule accepted it, the t-test weighs the spread
    c = compare({0: 1.1, 1: 5.0, 2: 1.2}, {0: 1.0, 1: 1.0, 2: 1.0})  # differences 0.1, 4.0, 0.2
    assert c.wins == 3 and c.verdict == "does not beat" and not c.beats
    assert c.p == pytest.approx(t_sf_df2(c.mean_diff / (np.std([0.1, 4.0, 0.2], ddof=1) / math.sqrt(3))), rel=1e-9)


def test_lower_is_better_metric_flips_the_sign():
    # mse: A lower by 0.1, 0.2, 0.15 -> mean 0.15, s.d. 0.05, t = 3 sqrt(3), 2 d.o.f.
    a = {0: 0.5, 1: 0.4, 2: 0.45}
    b = {0: 0.6, 1: 0.6, 2: 0.6}
    c = compare(a, b, higher_is_better=False)
    assert c.verdict == "beats" and c.mean_diff == pytest.approx(0.15) and c.wins == 3
    assert c.p == pytest.approx(t_sf_df2(3 * math.sqrt(3)), rel=1e-6)  # 0.0175
    worse = compare(a, b, higher_is_better=True)
    assert worse.verdict == "does not beat" and worse.mean_diff == pytest.approx(-0.15) and worse.wins == 0
    assert worse.p == pytest.approx(1 - c.p, rel=1e-6)
    assert compare(b, a, higher_is_better=False).verdict == "does not beat"


def test_two_seeds_are_too_few_however_large_the_gain():
    c = compare({0: 90.0, 1: 91.0}, {0: 80.0, 1: 80.5})
    assert c.verdict == "too few seeds" and not c.beats and c.n == 2 < MIN_SEEDS and c.wins == 2
    assert "too few seeds for a verdict (2 paired, 3 needed)" in c.line("kd", "ce")
    one = compare({0: 90.0, 7: 1.0}, {0: 80.0})
    assert one.verdict == "too few seeds" and one.n == 1 and math.isnan(one.p)
    assert one.line("kd", "ce") == "kd vs ce: too few seeds for a verdict (1 paired, 3 needed): mean paired difference +10.00, wins 1/1 seeds"


def test_bit_identical_results_are_identical_never_a_win():
    values = {0: 71.25, 1: 70.5, 2: 72.0, 3: 69.75}
    for higher in (True, False):
        c = compare(values, dict(values), higher_is_better=higher)
        assert c.verdict == "identical" and not c.beats and c.wins == 0 and c.mean_diff == 0.0
    assert compare(values, dict(values)).line("a", "b") == "a and b are identical: every paired difference is 0 (4/4 seeds)"
    assert compare({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}).verdict == "identical"


def test_a_constant_nonzero_difference_is_decided_without_dividing_by_zero():
    up = compare({0: 2.0, 1: 3.0, 2: 4.0}, {0: 1.0, 1: 2.0, 2: 3.0})
    assert up.verdict == "beats" and up.p == 0.0 and up.ci_low == up.ci_high == 1.0
    down = compare({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 3.0, 2: 4.0})
    assert down.verdict == "does not beat" and down.p == 1.0


def test_no_common_seed_is_a_config_error():
    with pytest.raises(ConfigError, match=r"no common seeds to compare: A has \[0, 1\], B has \[2\]"):
        compare({0: 1.0, 1: 2.0}, {2: 1.0})


# -- Holm --------------------------------------------------------------------------------------------
def test_holm_on_a_hand_worked_example():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04; running max -> 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])
    assert holm([]) == []


def test_holm_correct_decides_by_the_adjusted_p_and_skips_untested_rows():
    ones = {0: 1.0, 1: 1.0, 2: 1.0}
    strong = compare({0: 11.0, 1: 11.5, 2: 12.0}, ones)
    weak = compare({0: 2.0, 1: 3.0, 2: 4.0}, ones)  # differences 1, 2, 3: t = 2 sqrt(3), p 0.037
    null = compare({0: 0.0, 1: 1.0, 2: 2.0}, ones)  # differences -1, 0, 1: p 0.5
    few = compare({0: 5.0, 1: 6.0}, {0: 1.0, 1: 1.0})
    assert weak.beats and weak.p == pytest.approx(t_sf_df2(2 * math.sqrt(3)), rel=1e-9)
    s, w, f, z = holm_correct([strong, weak, few, null])
    assert f is few  # not tested, not in the family
    assert (s.family, w.family, z.family) == (3, 3, 3)
    assert s.p_adjusted == pytest.approx(3 * strong.p) and s.beats
    assert w.p_adjusted == pytest.approx(2 * weak.p) and w.verdict == "does not beat" and w.p == weak.p
    assert z.p_adjusted == pytest.approx(0.5) and not z.beats
    assert "(Holm-corrected over 3 rows: 0.074)" in w.line("weak", "ce")


# -- the verdict under simulation -------------------------------------------------------------------
def rate_by_compare(effect_sd: float, n: int, trials: int, seed: int) -> float:
    """Share of simulated paired experiments that ``compare()`` itself (looked up at call time, so a
    changed rule is what is measured) calls "beats": per-seed numbers of A and B, not differences."""
    rng = np.random.default_rng(seed)
    b = rng.normal(80.0, 1.0, size=(trials, n))
    a = b + rng.normal(effect_sd, 1.0, size=(trials, n))
    return float(np.mean([metrics.compare(dict(enumerate(x)), dict(enumerate(y))).beats for x, y in zip(a, b)]))


def check_false_positive_rate(n: int, trials: int = 1000) -> float:
    fpr = rate_by_compare(0.0, n, trials, seed=n)
    assert 0.025 <= fpr <= 0.075, f"false-positive rate {fpr:.3f} with {n} seeds, for a 5% test"
    return fpr


@pytest.mark.parametrize("n", [3, 5, 10])
def test_false_positive_rate_of_compare_under_the_null_is_alpha(n):
    print(f"false-positive rate of compare() under the null, n = {n}: {check_false_positive_rate(n):.4f}")


def test_a_lenient_rule_fails_the_null_simulation(monkeypatch):
    """The mutation the issue found passing every test: any positive mean with >= 5 seeds is a win."""
    real = metrics.compare

    def lenient(a, b, higher_is_better=True):
        c = real(a, b, higher_is_better)
        if c.n >= 5 and c.mean_diff > 0:
            return dataclasses.replace(c, verdict="beats")
        return c

    monkeypatch.setattr(metrics, "compare", lenient)
    with pytest.raises(AssertionError, match="false-positive rate"):
        check_false_positive_rate(5, trials=300)
    with pytest.raises(AssertionError):
        test_the_power_table_is_what_compare_decides(5, 0.0)


@pytest.mark.parametrize("n", [3, 5])
def test_false_positive_rate_under_the_null_is_at_most_alpha(n):
    fpr = verdict_power(0.0, n, trials=10_000, seed=n)
    print(f"false-positive rate under the null, n = {n}: {fpr:.4f}")
    assert 0.035 <= fpr <= 0.06  # a 5% test; near zero would mean it never fires


def test_power_at_two_sd_with_five_seeds():
    from scipy import stats

    power = verdict_power(2.0, 5, trials=10_000, seed=1)
    print(f"power at a true effect of 2 s.d. with n = 5: {power:.4f}")
    # exact power of the one-sided t-test: noncentral t with 4 d.o.f. and noncentrality 2 sqrt(5)
    exact = stats.nct.sf(stats.t.ppf(1 - ALPHA, 4), 4, 2 * math.sqrt(5))
    assert 0.9 < power < 1.0 and power == pytest.approx(exact, abs=0.01)
    assert verdict_power(2.0, 2) == 0.0  # too few seeds never wins


@pytest.mark.parametrize("n, effect", [(3, 1.0), (5, 0.0), (5, 0.5), (10, 0.5)])
def test_the_power_table_is_what_compare_decides(n, effect):
    """Each cell of the power table (``verdict_power``) equals compare()'s verdicts on the same draws."""
    trials = 300
    diffs = np.random.default_rng(7).normal(effect, 1.0, size=(trials, n))  # verdict_power's draws
    zero = dict.fromkeys(range(n), 0.0)
    by_compare = np.mean([metrics.compare(dict(enumerate(d)), zero).beats for d in diffs])
    assert verdict_power(effect, n, trials=trials, seed=7) == pytest.approx(by_compare)


def test_the_simulation_applies_the_same_rule_as_compare():
    rng = np.random.default_rng(3)
    diffs = rng.normal(1.0, 1.0, size=(300, 3))
    by_compare = np.mean([compare(dict(enumerate(d)), dict.fromkeys(range(3), 0.0)).beats for d in diffs])
    assert 0.1 < by_compare < 0.9  # both verdicts occur
    # the same draws, through the vectorised path (same generator, seed and shape)
    assert verdict_power(1.0, 3, trials=300, seed=3) == pytest.approx(by_compare)


# -- bench tables --------------------------------------------------------------------------------------
def rows_for(task: str, variants: dict[str, list[float]], status: dict[str, str] | None = None) -> list[dict]:
    status = status or {}
    return [{"task": task, "pair": "t -> s", "variant": v, "seed": seed, "status": status.get(v, "ok"),
             "test_best_acc": acc} for v, values in variants.items() for seed, acc in enumerate(values)]


def test_bench_aggregate_applies_holm_within_each_task():
    ce = [70.0, 71.0, 72.0]
    strong = [c + d for c, d in zip(ce, [10.0, 10.5, 11.0])]  # t = 21 sqrt(3)
    weak = [c + d for c, d in zip(ce, [1.0, 2.0, 3.0])]        # t = 2 sqrt(3): p 0.037 alone
    null = [c + d for c, d in zip(ce, [-1.0, 0.0, 1.0])]       # t = 0: p 0.5
    rows = rows_for("digits", {"ce": ce, "strong": strong, "weak": weak, "null": null, "skip": ce},
                    status={"skip": "not applicable: the pair has no feature maps"})
    rows += rows_for("alone", {"ce": ce, "weak": weak})
    summary = {(e["task"], e["variant"]): e for e in aggregate(rows)}
    p_strong, p_weak = t_sf_df2(21 * math.sqrt(3)), t_sf_df2(2 * math.sqrt(3))
    got = {v: summary[("digits", v)]["vs_ce"] for v in ("strong", "weak", "null")}
    # Holm over 3: the smallest p times 3, the next times 2 (running max), the largest times 1
    assert got["strong"]["p_adjusted"] == pytest.approx(3 * p_strong, rel=1e-6) and got["strong"]["beats"]
    assert got["weak"]["p_adjusted"] == pytest.approx(2 * p_weak, rel=1e-6) and got["weak"]["verdict"] == "does not beat"
    assert got["null"]["p_adjusted"] == pytest.approx(0.5) and got["null"]["p"] == pytest.approx(0.5)
    assert {v["family"] for v in got.values()} == {3}
    assert "vs_ce" not in summary[("digits", "skip")] and "vs_ce" not in summary[("digits", "ce")]
    alone = summary[("alone", "weak")]["vs_ce"]  # the same row, alone in its task: uncorrected, a win
    assert alone["family"] == 1 and alone["p_adjusted"] == pytest.approx(p_weak) and alone["verdict"] == "beats"
    md = markdown({"suite": "s", "summary": list(summary.values())})
    assert "digits: Holm-corrected over 3 rows" in md and "alone: Holm-corrected over 1 row)" in md
    assert "| weak | 3 | 73.00 ± 2.00 | +2.00 | does not beat |" in md  # the verdict a word, its detail below
    assert "| weak | +2.00 [-0.48, +4.48] | 0.074 | 0.037 | 3/3 |" in md  # the Holm-adjusted p, then the raw one
    assert "2 s.e." not in md


def test_bench_aggregate_lower_is_better_and_too_few_seeds():
    base = [0.60, 0.60, 0.60]
    rows = [dict(r, test_best_mse=r.pop("test_best_acc"))
            for r in rows_for("reg", {"ce": base, "better": [0.5, 0.4, 0.45], "worse": [0.7, 0.8, 0.75]})]
    rows += rows_for("two", {"ce": [70.0, 71.0], "kd": [80.0, 81.5]})
    summary = {(e["task"], e["variant"]): e for e in aggregate(rows)}
    assert summary[("reg", "better")]["metric"] == "mse"
    assert summary[("reg", "better")]["vs_ce"]["verdict"] == "beats"
    assert summary[("reg", "better")]["vs_ce"]["mean_diff"] == pytest.approx(0.15)
    assert summary[("reg", "worse")]["vs_ce"]["verdict"] == "does not beat"
    two = summary[("two", "kd")]["vs_ce"]
    assert two["verdict"] == "too few seeds" and two["family"] is None and two["p_adjusted"] is None


def test_kdzoo_compare_prints_the_verdict_of_two_run_directories(tmp_path, capsys):
    import json

    from kdzoo.cli import main

    def run(name: str, values: dict[int, float], metric: str = "acc") -> str:
        path = tmp_path / name
        path.mkdir()
        seeds = {str(s): {"test_best": {metric: v}} for s, v in values.items()}
        (path / "summary.json").write_text(json.dumps({"metric": metric, "seeds": seeds}))
        return str(path)

    kd, ce = run("kd", {0: 73.0, 1: 75.0, 2: 74.0, 3: 76.0}), run("ce", {0: 71.0, 1: 72.0, 2: 73.0, 3: 72.0})
    assert main(["compare", kd, ce]) == 0
    assert capsys.readouterr().out.strip() == ("kd beats ce: mean paired difference +2.50 (95% CI +0.45 to +4.55), "
                                               "one-sided paired t-test p = 0.015, wins 4/4 seeds")
    low, high = run("low", {0: 0.5, 1: 0.4, 2: 0.45}, "mse"), run("high", {0: 0.6, 1: 0.6, 2: 0.6}, "mse")
    assert main(["compare", low, high]) == 0
    assert capsys.readouterr().out.startswith("low beats high: mean paired difference +0.15")
    assert main(["compare", kd, run("other", {9: 1.0})]) == 2
    assert "no common seeds to compare" in capsys.readouterr().err

"""How many seeds a claim needs: the power of kdzoo's "beats" verdict, by simulation.

Usage: python benchmarks/verdict_power.py [--trials 10000] [--seed 0]

Prints the Markdown table shown in docs/user-guide.md ("How many seeds?"): for a true mean paired
difference of 0.5, 1, 2 and 3 standard deviations of the per-seed difference, the share of simulated
experiments with 3, 5 and 10 seeds that the verdict (a one-sided paired t-test at α = 0.05, one
comparison, no Holm correction) calls "beats". The first row (effect 0) is the false-positive rate.
Every cell comes from :func:`kdzoo.bench.metrics.verdict_power`.
"""

from __future__ import annotations

import argparse

from kdzoo.bench.metrics import verdict_power

EFFECTS_SD = (0.0, 0.5, 1.0, 2.0, 3.0)
SEEDS = (3, 5, 10)


def table(trials: int = 10_000, seed: int = 0) -> str:
    """The power table as Markdown, one row per effect size and one column per number of seeds."""
    head = "| true effect (s.d. of the per-seed difference) | " + " | ".join(f"{n} seeds" for n in SEEDS) + " |"
    lines = [head, "|---|" + "---|" * len(SEEDS)]
    for effect in EFFECTS_SD:
        label = f"{effect:g} (no effect: false positives)" if effect == 0 else f"{effect:g}"
        cells = [_percent(verdict_power(effect, n, trials, seed)) for n in SEEDS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _percent(share: float) -> str:
    return "> 99%" if share > 0.995 else f"{share:.0%}"  # "100%" would claim certainty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000, help="simulated experiments per cell")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random generator")
    args = parser.parse_args()
    print(table(args.trials, args.seed), end="")


if __name__ == "__main__":
    main()

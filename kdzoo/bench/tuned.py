"""Tuned rows of a bench suite: ``{name: kd, params: tuned}`` runs at its study's best parameters.

A suite names tuned parameters for a strategy with ``params: tuned``; ``kdzoo tune --suite`` runs one
study per (task, pair, tuned strategy), and one for ``ce`` (the learning rate alone, same trials) so that
tuned rows are compared with a tuned baseline. The bench then runs each tuned row at its study's best
trial: the cell's config holds those values, so its key changes with them. Optional suite settings::

    tune:
      trials: 20                 # finished trials per study
      seeds: [1000]              # tuning seeds (never the table's)
      storage: sqlite:///...     # one database for every study (default: BENCH/studies/STUDY/study.db)
      search: {kd.temperature: "1:16:log"}
      lr_range: "0.001:0.1:log"
      sampler_seed: 0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import make_config, parse_strategy
from ..contract.errors import ConfigError, unknown
from .tune import best_params, default_storage, make_spec

TUNED = "tuned"
TUNED_CE = "ce [tuned]"  # the baseline of tuned rows
TUNE_KEYS = {"trials": 20, "seeds": None, "storage": None, "search": None, "lr_range": None, "sampler_seed": 0}


def is_tuned(members: list[dict]) -> bool:
    """Whether a suite entry asks for tuned parameters (``params: tuned`` on any member)."""
    return any(m.get("params") == TUNED for m in members)


def tune_options(suite: dict[str, Any]) -> dict[str, Any]:
    """The suite's ``tune:`` settings with their defaults (unknown keys: one line)."""
    given = suite.get("tune") or {}
    if not isinstance(given, dict):
        raise ConfigError(f"suite {suite.get('name')!r}: 'tune' must be a mapping of {', '.join(TUNE_KEYS)}")
    for key in given:
        if key not in TUNE_KEYS:
            raise unknown(f"key in suite {suite.get('name')!r} tune", key, TUNE_KEYS)
    return {**TUNE_KEYS, **given}


def with_tuned_baseline(strategies: list[Any]) -> list[Any]:
    """A task's strategies plus ``{name: ce, params: tuned}`` when any row is tuned and the suite lacks it."""
    entries = [parse_strategy(e) for e in strategies]
    if any(is_tuned(m) for m in entries) and not any([m["name"] for m in e] == ["ce"] and is_tuned(e) for e in entries):
        return [*strategies, {"name": "ce", "params": TUNED}]
    return strategies


def study_of(suite: dict[str, Any], data: dict[str, Any], members: list[dict], out: Path, zoo: Any):
    """The study of one tuned suite entry: ``(spec, storage URL, study folder)``.

    Args:
        data: the cell's run config data (any seed), with ``strategy`` still holding ``params: tuned``.
        members: the entry's members.
    """
    opts = tune_options(suite)
    plain = [{k: v for k, v in m.items() if not (k == "params" and v == TUNED)} for m in members]
    searched = [m["name"] for m in members if m.get("params") == TUNED]
    config = make_config(dict(data, strategy=plain))
    table_seeds = list(data.get("train", {}).get("seeds") or [])
    spec = make_spec(config, zoo, trials=int(opts["trials"]), seeds=opts["seeds"], search=search_for(opts, searched),
                     lr_range=opts["lr_range"], sampler_seed=int(opts["sampler_seed"]), table_seeds=table_seeds,
                     members_searched=searched)
    folder = Path(out) / "studies" / spec.name
    return spec, opts["storage"] or default_storage(folder), folder


def search_for(opts: dict[str, Any], searched: list[str]) -> dict[str, Any] | None:
    """The suite's ``tune.search`` entries that concern one study: ``lr`` and its searched members' ``MEMBER.PARAM``."""
    given = opts.get("search")
    if not given:
        return None
    if not isinstance(given, dict):
        raise ConfigError(f"suite tune.search must map MEMBER.PARAM to LOW:HIGH[:log], got {given!r}")
    for key in given:
        if str(key) not in ("lr", "optim.lr") and "." not in str(key):
            raise ConfigError(f"suite tune.search key {key!r}: name the strategy, e.g. kd.{key}")
    own = {k: v for k, v in given.items() if str(k) in ("lr", "optim.lr") or str(k).split(".", 1)[0] in searched}
    return own or None


def tuned_members(suite: dict[str, Any], data: dict[str, Any], members: list[dict], out: Path, zoo: Any,
                  table_seeds: list[int]) -> tuple[list[dict], float, dict[str, Any]]:
    """A tuned entry at its study's best trial: ``(members with parameters, learning rate, tuned marker)``.

    The marker (``study``, ``trials`` run, of which ``pruned``, the chosen ``params``) goes onto the
    bench rows. A study that does not exist or has no finished trial is a one-line error naming the
    command that runs it.
    """
    spec, storage, folder = study_of(suite, dict(data, train=dict(data.get("train") or {}, seeds=table_seeds)),
                                     members, out, zoo)
    try:
        if storage == default_storage(folder) and not (folder / "study.db").is_file():
            raise ConfigError("no study")
        params, counts = best_params(storage, spec.name)
    except ConfigError:
        raise ConfigError(f"suite {suite.get('name')!r}: {'+'.join(m['name'] for m in members)} asks for tuned "
                          f"parameters, but study {spec.name} has no finished trial; run: kdzoo tune --suite "
                          f"{suite.get('name')} --out {Path(out)}") from None
    chosen = []
    for m in members:
        if m.get("params") != TUNED:
            chosen.append(m)
            continue
        own = {k.split(".", 1)[1]: v for k, v in params.items() if k.split(".", 1)[0] == m["name"]}
        chosen.append({k: v for k, v in m.items() if k != "params"} | ({"params": own} if own else {}))
    marker = {"study": spec.name, "folder": str(folder), "trials": counts["complete"] + counts["pruned"],
              "pruned": counts["pruned"], "params": params}
    return chosen, float(params["optim.lr"]), marker


def baseline_variant(rows: list[dict], task: str, pair: str, tuned: Any) -> str:
    """The row a variant's verdict is against: ``ce``; for a tuned row, ``ce [tuned]`` (the learning rate tuned
    with the same number of trials) when the bench has it."""
    if tuned and any(r["task"] == task and r["pair"] == pair and r["variant"] == TUNED_CE for r in rows):
        return TUNED_CE
    return "ce"


def tuned_variant(members: list[dict]) -> str:
    """``kd [tuned]``: a tuned row is named by its strategy, not by the values its study chose."""
    return "+".join(m["name"] for m in members) + " [tuned]"


__all__ = ["TUNED", "TUNED_CE", "baseline_variant", "is_tuned", "study_of", "tune_options", "tuned_members", "tuned_variant", "with_tuned_baseline"]

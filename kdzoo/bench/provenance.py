"""Where a set of results came from: the command, date, host, git commit and every distribution version.

Written into ``results.json`` by every bench and shown in a small header above its tables, so a reader
can tell which code, machine and packages produced a number without opening a log.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..versions import dist_version

CORE_DISTRIBUTIONS = ("kdzoo", "torch", "timm", "numpy", "scipy", "pluggy", "matplotlib")
"""Distributions every bench depends on; the plugin distributions are added from the ``kdzoo`` entry points."""

PROVENANCE_FIELDS = ("command", "date", "host", "git_commit", "versions")


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would type it again: ``kdzoo bench ...`` for the CLI, else the Python call."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "python"
    if program in ("kdzoo", "__main__.py"):
        program = "kdzoo"
    return shlex.join([program, *argv[1:]])


def distribution_versions() -> dict[str, str]:
    """Version of kdzoo's core dependencies and of every distribution that registers ``kdzoo`` plugins."""
    names = list(CORE_DISTRIBUTIONS)
    try:
        plugins = {ep.dist.name for ep in md.entry_points(group="kdzoo") if ep.dist is not None}
    except Exception:  # noqa: BLE001 - broken metadata must not stop a bench from writing its results
        plugins = set()
    names += sorted(plugins - set(names))
    out = {}
    for name in names:
        if (version := dist_version(name)) is not None:
            out[name] = version
    return out


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the kdzoo source tree (``-dirty`` when it has uncommitted changes), or None outside git."""
    where = where or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head or None


def host() -> dict[str, Any]:
    """The machine in a few fields: name, OS, Python, CPU model and cores, memory, GPUs."""
    info: dict[str, Any] = {"name": platform.node(), "os": platform.platform(terse=True),
                            "python": platform.python_version(), "cpu": _cpu_model(), "cores": os.cpu_count()}
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError, AttributeError):  # not on every OS
        pass
    try:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken driver is no reason to lose the results
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(command: str | None = None) -> dict[str, Any]:
    """Everything :data:`PROVENANCE_FIELDS` names, measured now (the date in UTC, ISO 8601)."""
    return {"command": command or command_line(),
            "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "host": host(), "git_commit": git_commit(), "versions": distribution_versions()}


def host_line(info: dict[str, Any] | str | None) -> str:
    """The host as one readable phrase, e.g. ``box (2 cores, Intel Xeon, 24 GiB; Linux-6.1; Python 3.11.7)``."""
    if not info:
        return "not recorded"
    if isinstance(info, str):
        return info
    machine = [f"{info['cores']} cores" if info.get("cores") else None, info.get("cpu"),
               f"{info['memory_gib']:g} GiB" if info.get("memory_gib") else None,
               ", ".join(info["gpus"]) if info.get("gpus") else None]
    rest = [info.get("os"), f"Python {info['python']}" if info.get("python") else None]
    inner = "; ".join(p for p in (", ".join(m for m in machine if m), *rest) if p)
    return f"{info.get('name') or 'host'} ({inner})" if inner else str(info.get("name") or "not recorded")


__all__ = ["PROVENANCE_FIELDS", "command_line", "distribution_versions", "git_commit", "host", "host_line",
           "provenance"]

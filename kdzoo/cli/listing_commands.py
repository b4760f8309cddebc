"""The commands that list or tidy what is installed and cached: ``kdzoo strategies``, ``plugins``,
``models``, ``datasets`` (from the listing snapshot), ``cache`` and ``completion``."""

from __future__ import annotations

import argparse
import json

from ..contract.errors import KdzooError
from ..cache import run_command
from ..zoo.listing import listing


def cmd_list(args: argparse.Namespace) -> int:
    snapshot = args.listing or listing()
    if args.command == "plugins":
        rows = snapshot["plugins"]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'plugin':<16} {'distribution':<16} {'version':<10} hooks")
        for r in [] if args.json else rows:
            status = f"ERROR {r['error']}" if r["error"] else ", ".join(r["hooks"])
            print(f"{r['name']:<16} {r['distribution']:<16} {r['version']:<10} {status}")
        return 0
    rows = snapshot[args.command]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    extra_header = f"{'family':<11} paper" if args.command == "strategies" else "description"
    print(f"{'name':<22} {'distribution':<16} {extra_header}")
    for r in rows:
        extra = f"{r['family']:<11} {r['paper']}" if args.command == "strategies" else r.get("description", "")
        if r.get("clash"):  # the bare name is ambiguous: say which names to use
            extra += f"  [clash: also {', '.join(r['clash'])}{'; pinned' if r.get('pinned') else ''}]"
        print(f"{r['name']:<22} {r['distribution']:<16} {extra}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    print(run_command(args.action, kinds=args.kind, keys=args.key, older_than_days=args.older_than,
                      everything=args.all, as_json=args.json))
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    try:
        import argcomplete
    except ImportError:
        raise KdzooError("shell completion needs argcomplete: pip install 'kdzoo[completion]'") from None
    print(argcomplete.shellcode(["kdzoo"], shell=args.shell))
    return 0

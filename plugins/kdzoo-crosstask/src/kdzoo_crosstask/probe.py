"""Teacher-embedding probe: nearest-class-mean accuracy of the teacher's features with the student's labels.

Does the teacher's embedding transfer to the student's task? The probe builds one centre per
student class from the teacher's pooled embeddings of the *labelled* train samples (the same
``labels_per_class`` the student sees), then classifies validation and test samples by the
nearest centre (cosine by default, as REFILLED's local classifier). It needs no training, so it
is a reference row beside the students: when it does not beat ``ce``, relational or projected
transfer from that teacher is not expected to help either.

Command line (any run config or flags of ``kdzoo distill``; only data, labels and teacher count)::

    python -m kdzoo_crosstask.probe --data mnist5k:mod3 --teacher lenet5 --teacher-data mnist5k \\
        --labels-per-class 5 --threads 1 [--set teacher_train.random_init=true] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kdzoo.plugin import embed  # re-exported: refilled and the probe's users import it from here


def class_centres(emb: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """L2-normalised mean embedding per class ``[K, D]`` (a class without samples gets zeros)."""
    sums = torch.zeros(num_classes, emb.shape[1], dtype=emb.dtype, device=emb.device).index_add_(0, labels, emb)
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1).to(emb.dtype).unsqueeze(1)
    return F.normalize(sums / counts, p=2, dim=1)


def ncm_predict(emb: Tensor, centres: Tensor, metric: str = "cosine") -> Tensor:
    """Nearest-centre class ids ``[N]`` for ``emb [N, D]``; ``cosine`` or ``euclidean``."""
    if metric == "cosine":
        return (F.normalize(emb, p=2, dim=1) @ centres.t()).argmax(1)
    return torch.cdist(emb, centres).argmin(1)


def ncm_probe(model: Any, bundle: Any, splits: Any, metric: str = "cosine", batch_size: int = 512) -> dict[str, float]:
    """NCM accuracy (%) of ``model``'s embedding on validation and test, centres from the labelled split."""
    k = len(bundle.classes)
    labelled_y = bundle.y[torch.as_tensor(splits.labelled, dtype=torch.long)]
    centres = class_centres(embed(model, bundle.x, splits.labelled, batch_size), labelled_y, k)
    out = {"labelled": int(len(splits.labelled))}
    for part in ("val", "test"):
        x, y = (bundle.test_x, bundle.test_y) if part == "test" and splits.official_test else (bundle.x, bundle.y)
        idx = getattr(splits, part)
        pred = ncm_predict(embed(model, x, idx, batch_size), centres, metric)
        out[f"{part}_acc"] = float((pred == y[torch.as_tensor(idx)]).float().mean() * 100)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m kdzoo_crosstask.probe``: print the probe's JSON (exit 2 with one line on a bad config)."""
    from kdzoo import load_yaml, make_config
    from kdzoo.plugin import KdzooError, load_zoo, task_teacher

    p = argparse.ArgumentParser(prog="python -m kdzoo_crosstask.probe", description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config")
    p.add_argument("--data")
    p.add_argument("--teacher")
    p.add_argument("--teacher-data")
    p.add_argument("--labels-per-class", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", help="also write the result to this file")
    args = p.parse_args(argv)
    try:
        data: dict[str, Any] = load_yaml(args.config) if args.config else {}
        for key, value in (("teacher", args.teacher), ("teacher_data", args.teacher_data)):
            if value:
                data[key] = value

        def section(key: str) -> dict:
            value = data.get(key) or {}
            data[key] = {"name": value} if isinstance(value, str) else dict(value)
            return data[key]

        if args.data:
            section("data")["name"] = args.data
        if args.labels_per_class is not None:
            section("data")["labels_per_class"] = args.labels_per_class
        if args.threads is not None:
            section("runtime")["threads"] = args.threads
        section("runtime")["progress"] = False
        config = make_config(data, args.set)
        if config.teacher is None:
            raise KdzooError("the probe needs a teacher (--teacher MODEL or teacher: in the config)")
        teacher, bundle, splits = task_teacher(config, load_zoo(), log=lambda *a: print(*a, file=sys.stderr))
        result = {"data": config.data.name, "teacher": config.teacher.name, "teacher_data": config.teacher_data,
                  "random_init": config.teacher_train.random_init, "labels_per_class": config.data.labels_per_class,
                  "metric": args.metric, **ncm_probe(teacher, bundle, splits, args.metric)}
    except KdzooError as exc:
        print(f"kdzoo: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


__all__ = ["class_centres", "embed", "main", "ncm_predict", "ncm_probe"]

if __name__ == "__main__":
    raise SystemExit(main())

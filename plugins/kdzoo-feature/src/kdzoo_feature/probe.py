"""Teacher-feature probe: a ``linear`` classifier on the frozen teacher's pooled features.

A reference row beside a distilled simple student (not a strategy), from the seed question of
distilling CNNs into logistic regression / a linear SVM: with the same labelled samples, how good
is a logistic regression on the teacher's pre-logit features, and what does it cost at inference
(a teacher forward plus a linear layer) compared with the distilled student alone?

Python::

    from kdzoo_feature.probe import teacher_feature_probe
    report = teacher_feature_probe(teacher, bundle, splits, student=student)

Command line (the teacher is the one ``kdzoo distill`` trains and caches for the same data)::

    python -m kdzoo_feature.probe --teacher test_resnet --data mnist5k --labels-per-class 100 \\
        --student runs/RUN/seed-0/student.safetensors --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kdzoo.data import eval_chunks
from kdzoo.plugin import Requirement, embed


def pooled_features(model: Any, x: Tensor, y: Tensor, idx: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Pre-logit features ``[N, D]`` of ``x[idx]`` (eval mode) and their targets ``[N]``, as numpy."""
    return embed(model, x, idx, batch_size).cpu().numpy(), y[torch.as_tensor(idx, dtype=torch.long)].numpy()


@torch.no_grad()
def ms_per_image(fn: Any, x: Tensor, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of ``fn(x)`` in milliseconds per image (after one warm-up)."""
    fn(x)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / len(x)


def _splits_xy(bundle: Any, splits: Any) -> tuple[Tensor, Tensor]:
    return (bundle.test_x, bundle.test_y) if splits.official_test else (bundle.x, bundle.y)


def fit_probe(f_lab: np.ndarray, y_lab: np.ndarray, f_val: np.ndarray, y_val: np.ndarray, cs: tuple[float, ...],
              num_classes: int) -> tuple[torch.nn.Linear, float, float]:
    """Standardise, fit scikit-learn's logistic regression for each ``C``, keep the best on validation.

    Args:
        f_lab: ``[N, D]`` labelled features; ``y_lab``: ``[N]`` their classes.
        f_val: ``[M, D]`` validation features; ``y_val``: ``[M]``.

    Returns:
        The probe folded into one ``nn.Linear(D, num_classes)`` (standardisation included), the
        chosen ``C`` and its validation accuracy (%).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(f_lab)
    best = None
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(f_lab), y_lab)
        val = float((clf.predict(scaler.transform(f_val)) == y_val).mean() * 100)
        if best is None or val > best[0]:
            best = (val, c, clf)
    val_acc, c, clf = best
    mean, scale = (torch.tensor(v, dtype=torch.float32) for v in (scaler.mean_, scaler.scale_))
    coef = torch.tensor(clf.coef_, dtype=torch.float32) / scale
    bias = torch.tensor(clf.intercept_, dtype=torch.float32) - coef @ mean
    if coef.shape[0] == 1:  # binary: scikit-learn keeps one row (the positive class)
        coef, bias = torch.cat([-coef / 2, coef / 2]), torch.cat([-bias / 2, bias / 2])
    linear = torch.nn.Linear(f_lab.shape[1], num_classes)
    with torch.no_grad():
        linear.weight.fill_(0.0)
        linear.bias.fill_(-1e9)  # classes never seen among the labels are never predicted
        rows = torch.as_tensor(clf.classes_, dtype=torch.long)
        linear.weight[rows], linear.bias[rows] = coef, bias
    return linear, c, val_acc


def teacher_feature_probe(teacher: Any, bundle: Any, splits: Any, *, student: Any = None,
                          cs: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0), timing_images: int = 256,
                          batch_size: int = 512) -> dict[str, Any]:
    """Logistic regression on the frozen teacher's pooled features, beside the distilled student.

    The probe trains on the labelled train samples only (``splits.labelled``), standardises the
    features, picks the inverse regularisation ``C`` on validation accuracy and reports test
    accuracy; costs are parameters and measured CPU milliseconds per image (batch of
    ``timing_images``).

    Args:
        teacher: the frozen ``KDModel``.
        bundle: the dataset (``kdzoo.plugin.DatasetBundle``).
        splits: its splits (``kdzoo.plugin.Splits``).
        student: an optional distilled ``KDModel`` to report beside the probe.
        cs: values of scikit-learn's ``C`` tried on validation.

    Returns:
        ``{"probe": {...}, "student": {...}}`` with ``test_acc``, ``val_acc``, ``params`` and
        ``ms_per_image`` (the student entry only when a student is given).
    """
    tx, ty = _splits_xy(bundle, splits)
    f_lab, y_lab = pooled_features(teacher, bundle.x, bundle.y, splits.labelled, batch_size)
    f_val, y_val = pooled_features(teacher, bundle.x, bundle.y, splits.val, batch_size)
    f_test, y_test = pooled_features(teacher, tx, ty, splits.test, batch_size)
    linear, c, val_acc = fit_probe(f_lab, y_lab, f_val, y_val, cs, len(bundle.classes))
    with torch.no_grad():
        test_acc = float((linear(torch.from_numpy(f_test)).argmax(1).numpy() == y_test).mean() * 100)
    device = next(teacher.parameters()).device
    linear = linear.to(device)
    teacher.eval()
    sample = next(eval_chunks(tx, ty, splits.test[:timing_images], timing_images))[0].to(device)
    probe_fn = lambda x: linear(teacher.outputs(x, Requirement(pooled=True)).pooled)  # noqa: E731
    t_params = sum(p.numel() for p in teacher.net.parameters())
    report: dict[str, Any] = {"probe": {
        "model": f"{teacher.meta['name']} features + linear", "test_acc": test_acc, "val_acc": val_acc, "C": c,
        "labelled": int(len(splits.labelled)), "feature_dim": int(f_lab.shape[1]),
        "params": t_params + sum(p.numel() for p in linear.parameters()),
        "ms_per_image": ms_per_image(probe_fn, sample)}}
    if student is not None:
        from kdzoo.plugin import evaluate

        student.eval()
        report["student"] = {
            "model": student.meta["name"], "test_acc": evaluate(student, tx, ty, splits.test, bundle.task)["acc"],
            "params": sum(p.numel() for p in student.net.parameters()), "ms_per_image": ms_per_image(student, sample)}
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m kdzoo_feature.probe``: print the probe (and student) report as JSON."""
    p = argparse.ArgumentParser(prog="python -m kdzoo_feature.probe", description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="teacher model name (trained and cached as kdzoo distill does)")
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--data-root")
    p.add_argument("--labels-per-class", type=int)
    p.add_argument("--student", help="an exported student .safetensors to report beside the probe")
    p.add_argument("--threads", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="dotted override, as kdzoo")
    args = p.parse_args(argv)
    from kdzoo import load_model, make_config
    from kdzoo.plugin import KdzooError, load_zoo
    from kdzoo.plugin import task_teacher

    data = {"teacher": {"name": args.teacher}, "strategy": "ce",
            "data": {"name": args.data, "root": args.data_root, "labels_per_class": args.labels_per_class},
            "runtime": {"threads": args.threads}}
    try:
        config = make_config(data, args.set)
        zoo = load_zoo()
        teacher, bundle, splits = task_teacher(config, zoo, log=lambda msg: print(msg, file=sys.stderr))
        device = next(teacher.parameters()).device
        student = load_model(args.student, zoo).to(device) if args.student else None
        report = teacher_feature_probe(teacher, bundle, splits, student=student)
    except KdzooError as exc:
        print(f"kdzoo: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

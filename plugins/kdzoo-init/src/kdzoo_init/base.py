"""What every parameter-init strategy shares: the contract side, the safety checks and the report.

An init strategy edits the student once, in ``init_student`` (before step 0, never on resume), and adds
no loss term: alone it trains with plain cross-entropy, stacked (``weight-selection+kd``) the other
member supplies the loss. Its ``needs`` ask nothing of the teacher, so the teacher is not even run
when the strategy is used alone.
"""

from __future__ import annotations

from typing import Any

from kdzoo.plugin import ConfigError, Needs, Requirement, RunContext, Strategy

from .mapping import LayerMap, TransferPlan, apply_plan, plan_transfer, summarise
from .selection import ElementMode

MIN_BACKBONE_COVERAGE = 0.5
"""Below this fraction of the student's non-classifier parameters taken from the teacher, the models
are treated as not matching (an error unless ``allow_partial``)."""


def model_label(model: Any) -> str:
    """``name(kwargs)`` of a :class:`kdzoo.plugin.KDModel`, for messages."""
    meta = getattr(model, "meta", {}) or {}
    kwargs = meta.get("kwargs") or {}
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{meta.get('name', type(getattr(model, 'net', model)).__name__)}({args})"


class ParameterInit(Strategy):
    """Base of the init family: subclasses define :meth:`layer_map` and :meth:`element_selection`."""

    family = "init"
    label_space = "any"
    requires_teacher = True
    tasks = frozenset({"classification", "regression"})

    def needs(self) -> Needs:
        return Needs(Requirement(logits=True), Requirement())

    def forward(self, batch, student, teacher, step):
        return {}

    # -- what subclasses choose ------------------------------------------------------------------
    def layer_map(self) -> LayerMap:
        raise NotImplementedError

    def element_selection(self) -> ElementMode:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The strategy's choices, echoed in the report."""
        import dataclasses

        return dataclasses.asdict(self.config)

    def check_plan(self, plan: TransferPlan, summary: dict[str, Any], ctx: RunContext) -> None:
        """Raise :class:`kdzoo.ConfigError` when the models do not match (unless ``allow_partial``)."""
        if self.config.allow_partial:
            return
        pair = f"teacher {model_label(ctx.teacher)} and student {model_label(ctx.student)}"
        if not plan.values:
            raise ConfigError(f"{self.name}: nothing maps between {pair} (different model families?); "
                              f"set strategy.{self.name}.allow_partial=true to train from random init anyway")
        coverage = summary["backbone_coverage"]
        if coverage < MIN_BACKBONE_COVERAGE:
            first = summary["left_random"][0]
            raise ConfigError(
                f"{self.name}: only {coverage:.0%} of the student's parameters map from the teacher for {pair} "
                f"(e.g. {first['tensors'][0]}: {first['reason']}); "
                f"set strategy.{self.name}.allow_partial=true to accept a partial init")

    # -- the contract ----------------------------------------------------------------------------
    def init_student(self, ctx: RunContext) -> dict[str, Any]:
        teacher, student = ctx.teacher.net, ctx.student.net
        same_labels, why = _same_label_space(ctx)
        plan = plan_transfer(teacher, student, self.layer_map(), self.element_selection(), transfer_head=same_labels,
                             head_reason=why)
        summary = summarise(plan, student)
        self.check_plan(plan, summary, ctx)
        apply_plan(student, plan)
        report = {
            "strategy": self.name, "paper": self.paper, "settings": self.settings(),
            "teacher": model_label(ctx.teacher), "student": model_label(ctx.student),
            **{k: v for k, v in summary.items() if k != "left_random"},
            "block_maps": [c.__dict__ for c in plan.containers],
            "other_containers": "every other block container maps index to index (same number of children)",
            "head": "transferred (same label space)" if same_labels else f"left at random init: {why}",
            "left_random": summary["left_random"],
            "notes": plan.notes,
            "sources": {k: f"{t} ({how})" for k, (t, how) in plan.sources.items()},
        }
        if ctx.rank == 0:  # one voice under torchrun; every rank applies the same plan
            for line in report_lines(report, plan):
                ctx.log(line)
        return report


def _same_label_space(ctx: RunContext) -> tuple[bool, str]:
    t_meta = ctx.teacher.meta or {}
    t_classes, s_classes = list(t_meta.get("classes") or []), list(ctx.classes)
    t_out, s_out = t_meta.get("num_classes"), ctx.student.meta.get("num_classes")
    if t_out != s_out:
        return False, f"teacher has {t_out} outputs, student {s_out}"
    if t_classes and s_classes and t_classes != s_classes:
        return False, f"label spaces differ (teacher {t_classes[:5]}, student {s_classes[:5]})"
    return True, ""


def report_lines(report: dict[str, Any], plan: TransferPlan) -> list[str]:
    """One summary line, then one line per mapped block container and per reason for random init."""
    pct = 100.0 * report["params_from_teacher"] / max(1, report["params_total"])
    lines = [
        f"{report['strategy']}: {report['tensors_from_teacher']}/{report['tensors_total']} student tensors "
        f"({report['tensors_copied']} copied, {report['tensors_selected']} selected), "
        f"{report['params_from_teacher']:,}/{report['params_total']:,} parameters ({pct:.1f}%) from teacher "
        f"{report['teacher']} -> student {report['student']}"
    ]
    lines += [f"  blocks {c.line()}" for c in plan.containers]
    if not plan.containers:
        lines.append("  blocks: same depth everywhere, every block maps to the block of the same index")
    lines += [f"  note {n}" for n in plan.notes]
    for group in report["left_random"]:
        shown = ", ".join(group["tensors"][:4]) + (", ..." if group["count"] > 4 else "")
        lines.append(f"  random init ({group['count']} tensors): {group['reason']} [{shown}]")
    return lines


__all__ = ["MIN_BACKBONE_COVERAGE", "ParameterInit", "model_label", "report_lines"]

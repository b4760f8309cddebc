"""Composition rules of the strategy stack, with strategies registered for the test only."""

import re
import types

import pytest
import torch

import kdzoo
import kdzoo.plugin
from kdzoo.config import StrategySpec
from kdzoo.contract.errors import ConfigError
from kdzoo.zoo.plugins import load_zoo
from kdzoo.zoo.stack import StrategyStack, check_label_space
from kdzoo.contract.strategy import DataSource, Needs, Requirement, Stage, Strategy


def make(name, **attrs):
    body = {"name": name, "family": "logit", "requires_teacher": False, **attrs}
    return type(name.title().replace("-", ""), (Strategy,), body)


@pytest.fixture
def zoo_with():
    def build(*classes):
        zoo = load_zoo(entry_points=False)
        plugin = types.SimpleNamespace(__name__="test-plugin")

        @kdzoo.plugin.hookimpl
        def register_strategies(register):
            for cls in classes:
                register(cls)

        plugin.register_strategies = register_strategies
        zoo.add_plugin(plugin, "test-plugin")
        return zoo.collect()

    return build


def members(*classes):
    return [cls(cls.Config(), None) for cls in classes]


def test_two_data_sources_conflict():
    src = type("Src", (DataSource,), {})
    a = make("a", data_source=lambda self, ctx: src())
    b = make("b", data_source=lambda self, ctx: src())
    with pytest.raises(ConfigError, match="two strategies supply training data"):
        StrategyStack(members(a, b)).data_source(None)


def test_only_one_member_may_define_stages():
    staged = lambda self: [Stage("hint", 0.3), Stage("kd", 0.7)]  # noqa: E731
    with pytest.raises(ConfigError, match="only one strategy in a stack may define stages"):
        StrategyStack(members(make("a", stages=staged), make("b", stages=staged)))
    stack = StrategyStack(members(make("a", stages=staged), make("b")))
    assert [stack.stage_at(s, 10)[0].name for s in (0, 2, 3, 9)] == ["hint", "hint", "kd", "kd"]


def test_label_weight_disagreement_needs_an_explicit_weight():
    a = make("a", term_weights=lambda self: {"label": 0.1})
    b = make("b", term_weights=lambda self: kdzoo.plugin.alpha_blend("b", 0.5))
    with pytest.raises(ConfigError, match="disagree on the hard-label weight"):
        StrategyStack(members(a, b))
    assert StrategyStack(members(a, b), label_weight=0.3).label_weight == 0.3
    assert StrategyStack(members(a, make("c"))).label_weight == 0.1


def test_same_term_from_two_members_is_an_error():
    term = lambda self, batch, s, t, step: {"x": s.logits.sum()}  # noqa: E731
    stack = StrategyStack(members(make("a", forward=term), make("b", forward=term)))
    out = kdzoo.plugin.Outputs(logits=torch.zeros(2, 3, requires_grad=True))
    with pytest.raises(ConfigError, match="both return loss term 'x'"):
        stack.losses(None, out, None, kdzoo.plugin.StepInfo(0, 1, 0.0))


def test_label_space_mismatch_is_refused_with_a_hint():
    # with no cross-task strategy installed, the hint says what to look for, naming no plugin's strategy
    with pytest.raises(ConfigError, match=r"teacher has 10 classes, student data 2 .*label_space = 'any'"):
        check_label_space("kd", [str(i) for i in range(10)], ["even", "odd"], "classification")


def test_duplicate_member_and_unknown_preset(zoo_with):
    from kdzoo.zoo.stack import check_specs

    zoo = zoo_with(make("a"))
    with pytest.raises(ConfigError, match="appears twice"):
        check_specs([StrategySpec("a"), StrategySpec("a")], zoo)
    with pytest.raises(ConfigError, match="unknown preset of strategy 'a' 'paper'"):
        check_specs([StrategySpec("a", preset="paper")], zoo)


def test_invalid_strategy_name_is_reported_or_fatal_when_strict(zoo_with, capsys, monkeypatch):
    from kdzoo.contract.errors import PluginError

    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    zoo = zoo_with(make("Bad_Name"), make("good"))
    assert "invalid name 'Bad_Name'" in capsys.readouterr().err and "Bad_Name" not in zoo.strategies
    monkeypatch.setenv("KDZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="invalid name 'Bad_Name'"):
        zoo_with(make("Bad_Name"))


def test_check_strategy_catches_a_wrong_type_default_and_a_dropped_label_loss(zoo_with, monkeypatch):
    from dataclasses import dataclass

    from kdzoo.testing import check_strategy

    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)

    @dataclass
    class Cfg:
        beta: float = "high"

    with pytest.raises(AssertionError, match=r"Config.beta: default 'high' is a str, not a float"):
        check_strategy("bad-default", zoo=zoo_with(make("bad-default", Config=Cfg)))
    pooled_only = make("pooled-only", needs=lambda self: Needs(Requirement(pooled=True)))
    with pytest.raises(AssertionError, match=r"'pooled-only': needs\(\) asks the student for no logits"):
        check_strategy("pooled-only", zoo=zoo_with(pooled_only))


def test_a_stack_whose_student_needs_drop_the_weighted_label_loss_is_refused(zoo_with):

    class LateNeeds(make("late-needs")):
        """Its needs depend on run state, so only the stack (not registration) can check them."""

        def __init__(self, config, ctx):
            super().__init__(config, ctx)
            self.requirement = Requirement(pooled=True)

        def needs(self):
            return Needs(self.requirement)

    assert "late-needs" in zoo_with(LateNeeds).strategies  # passes registration
    with pytest.raises(ConfigError, match=r"'late-needs': needs\(\) asks the student for no logits, so the hard-label "
                                          r"loss \(weight 1\) would be dropped"):
        StrategyStack([LateNeeds(None, None)])
    assert StrategyStack([LateNeeds(None, None)], label_weight=0.0).label_weight == 0.0


@pytest.mark.parametrize("strategy, term", [("pooled-feature", "pooled"), ("rkd", "rkd_distance"), ("sp", "sp"),
                                            ("pooled-feature+kd", "pooled")])
def test_a_weighted_term_with_no_gradient_path_fails_the_run_in_one_line(tmp_path, capsys, strategy, term):
    from kdzoo.cli import main

    code = main(["distill", "--teacher", "mlp", "--student", "linear", "--strategy", strategy, "--data", "digits",
                 "--steps", "2", "--out", str(tmp_path), "--no-progress", "--set", "teacher_train.epochs=1"])
    err = capsys.readouterr().err.strip().splitlines()
    owner = strategy.split("+")[0]
    dist = {"pooled-feature": "kdzoo-feature", "rkd": "kdzoo-crosstask", "sp": "kdzoo-crosstask"}[owner]
    assert len(err) == 1 and code == 2
    assert err[-1].startswith(f"kdzoo: error: strategy {owner!r} of {dist}: loss term {term!r} (weight ")
    assert re.search(r"never reaches a trainable parameter of the student: student 'linear' has no features "
                     rf"to match \(its features are its input\) \({dist.replace('-', '_')}/\w+\.py:\d+\)$",
                     err[-1]), err[-1]
    assert not list(tmp_path.iterdir())  # nothing left on disk


def test_attributes_kdzoo_no_longer_reads_are_load_errors_not_silently_ignored(zoo_with, capsys, monkeypatch):
    monkeypatch.delenv("KDZOO_STRICT_PLUGINS", raising=False)
    old_style = make("old-style", label_weight=property(lambda self: 0.1))
    assert "old-style" not in zoo_with(old_style).strategies
    err = capsys.readouterr().err
    assert "strategy 'old-style' defines 'label_weight', which kdzoo no longer reads; return it as term_weights()['label']" in err
    assert "old-grad" not in zoo_with(make("old-grad", teacher_grad=True)).strategies
    assert "'teacher_grad', which kdzoo no longer reads" in capsys.readouterr().err


def test_a_member_may_not_return_a_term_named_label():
    stack = StrategyStack(members(make("a", forward=lambda self, batch, s, t, step: {"label": s.logits.sum()})))
    with pytest.raises(ConfigError, match="strategy 'a' returns a loss term named 'label'"):
        stack.losses(None, types.SimpleNamespace(logits=torch.ones(2, 3)), None, types.SimpleNamespace(stage="main"))


def test_a_label_space_mismatch_suggests_installed_strategies_that_allow_it(zoo_with):
    from kdzoo.zoo.stack import cross_task_alternatives

    anywhere = make("anywhere-kd", label_space="any", requires_teacher=True)
    regression_only = make("anywhere-regression", label_space="any", requires_teacher=True,
                           tasks=frozenset({"regression"}))
    zoo = zoo_with(anywhere, regression_only, make("same-kd", requires_teacher=True), make("no-teacher", label_space="any"))
    assert cross_task_alternatives(zoo) == ["anywhere-kd"]  # no family or plugin name decides it
    with pytest.raises(ConfigError, match=r"does not need the teacher's label space instead: anywhere-kd$"):
        check_label_space("kd", ["a", "b"], ["c"], "classification", cross_task_alternatives(zoo))
    # nothing installed: what to look for
    with pytest.raises(ConfigError, match=r"a strategy with label_space = 'any'"):
        check_label_space("kd", ["a", "b"], ["c"], "classification", cross_task_alternatives(zoo_with()))


def test_a_two_seed_run_resolves_its_stack_once_and_works_out_its_budget_once(tmp_path, monkeypatch):
    """The stack is resolved into members once per run (not once per consumer or seed), and carried down."""
    import sys

    import kdzoo.data
    import kdzoo.zoo.stack as stack
    from kdzoo.config import make_config
    from kdzoo.train.runs import distill, task_teacher

    config = {"student": {"name": "mlp", "kwargs": {"hidden": [8]}},
              "teacher": {"name": "mlp", "kwargs": {"hidden": [16]}},
              "strategy": "kd", "data": {"name": "digits"}, "train": {"steps": 2, "seeds": [0, 1]},
              "teacher_train": {"epochs": 1}, "runtime": {"progress": False}, "out": str(tmp_path), "name": "r"}
    task_teacher(make_config(config), load_zoo(), log=lambda *a: None)  # the cached teacher's own run, beforehand
    calls = {"resolve_stack": 0, "steps_per_epoch": 0}

    def counting(module, name):
        real = getattr(module, name)

        def count(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        for loaded in list(sys.modules.values()):  # every module that imported the name, wherever it did
            if getattr(loaded, "__name__", "").startswith("kdzoo") and getattr(loaded, name, None) is real:
                monkeypatch.setattr(loaded, name, count)

    counting(stack, "resolve_stack")
    counting(kdzoo.data, "steps_per_epoch")
    result = distill(config, log=lambda *a: None)
    assert sorted(result.seeds) == [0, 1]
    assert calls == {"resolve_stack": 1, "steps_per_epoch": 1}

"""Every loss term is checked where a strategy returns it: one line naming who made it and where.

A throw-away distribution registers one careless strategy per malformed term; each is refused in the
same words by ``kdzoo distill`` (exit 2, nothing on disk), ``kdzoo.testing.check_strategy`` and
``kdzoo.Distiller``.
"""

import re

import pytest
import torch

from kdzoo import Distiller
from kdzoo.cli import main
from kdzoo.contract.errors import PluginError
from kdzoo.testing import check_strategy
from kdzoo.zoo.plugins import load_zoo
from test_plugins import write_dist

CARELESS = '''
import torch
import torch.nn.functional as F
import kdzoo
import kdzoo.plugin


def soft(student, teacher):
    return F.kl_div(F.log_softmax(student.logits, -1), F.softmax(teacher.logits, -1), reduction="batchmean")


class PerSample(kdzoo.plugin.Strategy):
    name = "bad-per-sample"
    def forward(self, batch, student, teacher, step):
        per_sample = F.kl_div(F.log_softmax(student.logits, -1), F.softmax(teacher.logits, -1), reduction="none")
        return {"soft": per_sample.sum(-1)}


class PlainFloat(kdzoo.plugin.Strategy):
    name = "bad-float"
    def forward(self, batch, student, teacher, step):
        return {"soft": soft(student, teacher).item()}


class IntegerTerm(kdzoo.plugin.Strategy):
    name = "bad-int"
    def forward(self, batch, student, teacher, step):
        return {"soft": (student.logits.argmax(-1) == teacher.logits.argmax(-1)).sum()}


class ElsewhereTerm(kdzoo.plugin.Strategy):
    name = "bad-device"
    def forward(self, batch, student, teacher, step):
        return {"soft": soft(student, teacher).to("meta")}


class DetachedTerm(kdzoo.plugin.Strategy):
    name = "bad-detached"
    def forward(self, batch, student, teacher, step):
        return {"soft": soft(student, teacher).detach()}


class MutedDetached(DetachedTerm):
    """Detached, but weighted 0: logged only, so not a fault."""
    name = "muted-detached"
    def term_weights(self):
        return {"soft": 0.0}


class BareTensor(kdzoo.plugin.Strategy):
    name = "bad-return"
    def forward(self, batch, student, teacher, step):
        return soft(student, teacher)


class LateNan(kdzoo.plugin.Strategy):
    name = "late-nan"
    def forward(self, batch, student, teacher, step):
        return {"soft": soft(student, teacher) * (float("nan") if step.step == 1 else 1.0)}


@kdzoo.plugin.hookimpl
def register_strategies(register):
    for cls in (PerSample, PlainFloat, IntegerTerm, ElsewhereTerm, DetachedTerm, MutedDetached, BareTensor,
                LateNan):
        register(cls)
'''

# strategy -> (the term's problem, what it got)
CASES = {
    "bad-per-sample": ("is not 0-d (reduce it to a scalar, e.g. with .mean())",
                       r"Tensor of shape \[\d+\], dtype torch.float32 on cpu"),
    "bad-float": ("is not a tensor", r"float \d"),
    "bad-int": ("is not floating-point", r"Tensor of shape \[\], dtype torch.int64 on cpu, without a graph"),
    "bad-device": ("is not on the student's device (cpu)", r"Tensor of shape \[\], dtype torch.float32 on meta"),
    "bad-detached": ("is detached from the student's outputs although its weight is 1 (no .item(), .detach(), "
                     "torch.tensor(...) or no_grad on the way)",
                     r"Tensor of shape \[\], dtype torch.float32 on cpu, without a graph"),
}
CLASS = {"bad-per-sample": "PerSample", "bad-float": "PlainFloat", "bad-int": "IntegerTerm",
         "bad-device": "ElsewhereTerm", "bad-detached": "DetachedTerm"}


@pytest.fixture(scope="module")
def careless(tmp_path_factory):
    """The careless distribution, installed for this module; yields its folder."""
    root = tmp_path_factory.mktemp("careless-site")
    write_dist(root, "kdzoo-careless-terms", "kdzoo_careless_terms", CARELESS)
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(root))
    yield root
    mp.undo()


def forward_line(root, strategy):
    """``FILE:LINE`` of the strategy's ``forward`` in the careless module."""
    lines = (root / "kdzoo_careless_terms.py").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"class {CLASS[strategy]}("))
    line = next(i for i in range(start, len(lines)) if "def forward" in lines[i]) + 1
    return f"{root / 'kdzoo_careless_terms.py'}:{line}"


def expected(root, strategy):
    problem, got = CASES[strategy]
    where = re.escape(forward_line(root, strategy))
    return (rf"strategy '{strategy}' of kdzoo-careless-terms: loss term 'soft' {re.escape(problem)}: got {got}.*; "
            rf"forward must return 0-d floating tensors on the student's device \({where}\)$")


@pytest.mark.parametrize("strategy", sorted(CASES))
def test_a_malformed_term_stops_distill_in_one_line_naming_the_plugin(careless, tmp_path, capsys, strategy):
    out = tmp_path / "runs"
    code = main(["distill", "--teacher", "mlp", "--student", "linear", "--strategy", strategy, "--data", "digits",
                 "--steps", "2", "--out", str(out), "--no-progress", "--set", "teacher_train.epochs=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert re.match("kdzoo: error: " + expected(careless, strategy), err[0]), err[0]
    assert not out.exists() or not list(out.iterdir())  # refused before step 0: nothing left on disk


@pytest.mark.parametrize("strategy", sorted(CASES))
def test_check_strategy_raises_the_same_error(careless, strategy):
    with pytest.raises(PluginError) as caught:
        check_strategy(strategy, zoo=load_zoo())
    assert re.match(expected(careless, strategy), str(caught.value)), str(caught.value)


def test_the_distiller_checks_terms_too_and_a_zero_weight_term_may_be_detached(careless):
    zoo = load_zoo()
    models = dict(num_classes=3, input_shape=(8,), zoo=zoo)
    x, y = torch.rand(6, 8), torch.arange(6) % 3
    with pytest.raises(PluginError) as caught:
        Distiller("linear", "linear", "bad-per-sample", **models)(x, y)
    assert re.match(expected(careless, "bad-per-sample"), str(caught.value))
    with torch.no_grad():  # no graph anywhere: nothing to check but the shape
        Distiller("linear", "linear", "bad-detached", **models).eval()(x, y)
    out = Distiller("linear", "linear", "muted-detached", **models)(x, y)
    assert out.weights["soft"] == 0 and not out.terms["soft"].requires_grad
    check_strategy("muted-detached", zoo=zoo)


def test_a_nan_names_the_step_as_strategies_count_it(careless, tmp_path, capsys):
    code = main(["distill", "--teacher", "mlp", "--student", "linear", "--strategy", "late-nan", "--data", "digits",
                 "--steps", "3", "--out", str(tmp_path), "--no-progress", "--set", "teacher_train.epochs=1"])
    err = capsys.readouterr().err.strip().splitlines()
    # the forward that made it saw StepInfo.step == 1: the message says step 1, counted from 0
    assert code == 2 and err == ["kdzoo: error: step 1 (0-based): loss term 'soft' is nan (strategy late-nan); "
                                 "check the strategy's parameters and the learning rate, or set "
                                 "train.nonfinite=skip to skip such steps"], err


def test_a_forward_that_returns_no_dict_is_refused_in_one_line(careless):
    with pytest.raises(PluginError) as caught:
        check_strategy("bad-return", zoo=load_zoo())
    lines = (careless / "kdzoo_careless_terms.py").read_text().splitlines()
    start = lines.index("class BareTensor(kdzoo.plugin.Strategy):")
    line = next(i for i in range(start, len(lines)) if "def forward" in lines[i]) + 1
    assert str(caught.value) == (
        "strategy 'bad-return' of kdzoo-careless-terms: forward returned Tensor of shape [], dtype torch.float32 on "
        "cpu, not a dict of loss terms by name (e.g. {'kd': loss}) "
        f"({careless / 'kdzoo_careless_terms.py'}:{line})")

"""kdzoo's own plugin: the registered models, the bundled datasets, the ``ce`` baseline and the trackers.

Registered through the same hooks as any third-party plugin (credited to ``kdzoo``). The built-in
executors belong to the bench, which adds them to this plugin when it needs them
(:mod:`kdzoo.bench.executors.builtin`): the zoo imports nothing above it.
"""

from __future__ import annotations

from typing import ClassVar

from ..contract.hookspecs import hookimpl
from ..contract.strategy import Needs, Requirement, Strategy
from ..data import BUILTIN_DATASETS
from ..loggers import BUILTIN_LOGGERS
from ..models import simple as simple_models


class CE(Strategy):
    """Labels only: cross-entropy (or MSE for regression) on the labelled samples; no teacher."""

    name: ClassVar[str] = "ce"
    family: ClassVar[str] = "baseline"
    paper: ClassVar[str] = "supervised baseline"
    tasks = frozenset({"classification", "regression"})
    label_space = "any"
    requires_teacher = False

    def needs(self) -> Needs:
        return Needs(Requirement(logits=True), Requirement())


@hookimpl
def register_strategies(register):
    register(CE)


@hookimpl
def register_models(register):
    register("linear", simple_models.linear, features="pooled (the raw input)",
             description="multinomial logistic / linear regression on raw inputs")
    register("mlp", simple_models.mlp, features="pooled, one feature per hidden layer",
             description="fully connected net; kwargs: hidden=[256], dropout=0")
    register("lenet5", simple_models.lenet5, features="pooled (84-d), 2 conv stages",
             description="LeNet-5; kwargs: batchnorm=false, width=1.0")
    register("vggnet", simple_models.vggnet, features="pooled (hidden-d), one conv stage per pool",
             description="VGG-style BatchNorm CNN; kwargs: channels=[[32], [64, 64], [128]], hidden=256, dropout=0.3")


@hookimpl
def register_datasets(register):
    for name, (loader, task) in BUILTIN_DATASETS.items():
        register(name, loader, task=task, description=(loader.__doc__ or "").strip().splitlines()[0])


@hookimpl
def register_loggers(register):
    for name, (factory, package, description) in BUILTIN_LOGGERS.items():
        register(name, factory, requires=package, install="'kdzoo[trackers]'", description=description)

"""The kdzoo hook specifications: the whole plugin surface, in one small module.

A plugin is any module or object with ``@kdzoo.plugin.hookimpl`` functions, found through the
``kdzoo`` entry-point group. Every hook receives a ``register`` callback instead of returning
values, so kdzoo can validate each item and credit it to the distribution that sent it.

Hookimpl arguments must never have default values: pluggy does not pass arguments that have
defaults.
"""

from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("kdzoo")
hookimpl = HookimplMarker("kdzoo")


@hookspec
def register_strategies(register):
    """Register distillation strategies.

    :param register: ``register(strategy_cls)``; ``strategy_cls`` is a subclass of
        :class:`kdzoo.plugin.Strategy` whose ``name`` is lower-case with hyphens (a name two
        distributions offer is reached as ``DIST:NAME``).
    :returns: nothing; call ``register`` once per strategy.
    """


@hookspec
def register_models(register):
    """Register models that are not timm models (e.g. ``linear``, ``mlp``, ``lenet5``).

    :param register: ``register(name, factory, *, features="...", description="...")``;
        ``factory(num_classes, input_shape, **kwargs) -> nn.Module`` builds a model that follows
        timm's feature API (``forward_features``, ``forward_head(x, pre_logits=...)``,
        ``forward_intermediates``, ``feature_info``, ``num_features``).
    :returns: nothing; call ``register`` once per model.
    """


@hookspec
def register_datasets(register):
    """Register datasets, addressed on the command line as ``NAME`` or ``NAME:ARG``.

    :param register: ``register(name, loader, *, task="classification", description="...")``;
        ``loader(arg, root) -> kdzoo.data.DatasetBundle`` returns tensors held in memory.
    :returns: nothing; call ``register`` once per dataset.
    """


@hookspec
def register_references(register):
    """Register reference rows: measurements shown beside the students in ``kdzoo bench``, not strategies.

    A suite task lists the references it wants (``references: [teacher-feature-probe]``); each is
    computed once per task and teacher/student pair, cached in the bench directory, and reported
    without a "beats ce" verdict (e.g. a linear probe on the teacher's features).

    :param register: ``register(name, fn, *, description="...")``; ``fn(teacher, bundle, splits)``
        gets the frozen teacher (``kdzoo.plugin.KDModel``, eval mode), the task's ``DatasetBundle`` and its
        ``Splits`` (labelled samples: ``splits.labelled``) and returns a dict with ``test_acc`` (%)
        and optionally ``val_acc``, ``params`` and ``ms_per_image``.
    :returns: nothing; call ``register`` once per reference.
    """


@hookspec
def register_loggers(register):
    """Register experiment trackers, switched on by name in ``runtime.loggers``.

    :param register: ``register(name, factory, *, requires=None, description="...")``; ``requires``
        names a package the logger imports (checked before the run directory exists); ``factory(ctx)`` gets a
        :class:`kdzoo.train.loggers.LoggerContext` (run directory, seed, runs root, tracking URI, config) and
        returns an object with ``start(params)``, ``log(metrics, step)``, ``artifact(path)`` and
        ``finish(status)`` (:class:`kdzoo.train.loggers.RunLogger`), called on rank 0 where the trainer
        writes ``metrics.jsonl``.
    :returns: nothing; call ``register`` once per logger.
    """


@hookspec
def register_commands(register):
    """Register ``kdzoo`` subcommands (a plugin's tools, run as ``kdzoo NAME ...``).

    :param register: ``register(name, run, *, setup=None, help="...")``; ``setup(parser)`` adds the
        command's arguments to an ``argparse`` parser, ``run(args) -> int`` runs it with the parsed
        namespace and returns the exit code. ``help`` is the line ``kdzoo --help`` shows (read from
        the listing cache, so it costs no plugin import).
    :returns: nothing; call ``register`` once per command.
    """


@hookspec
def register_executors(register):
    """Register executors: where ``kdzoo bench --executor NAME`` (or a suite's ``executor:``) runs cells.

    kdzoo ships ``local`` (worker processes on this machine), ``slurm`` (one submitit job per cell)
    and ``ray`` (one Ray task per cell); a plugin may add another scheduler.

    :param register: ``register(name, factory, *, requires=None, install=None, description="...")``;
        ``requires`` names a package the executor imports (checked before anything is submitted;
        ``install`` is the pip argument that provides it); ``factory(options)`` gets the executor's
        settings (a dict: suite ``executor_options`` updated by the command line) and returns a
        :class:`kdzoo.bench.executors.Executor`: ``submit(tasks) -> handles``, ``poll(handles) ->
        {key: TaskState}``, ``cancel(handles)``, ``attach(record) -> handle or None`` and ``close()``.
        A task (:class:`kdzoo.bench.executors.Task`) is a picklable module-level callable with its
        arguments and :class:`kdzoo.bench.executors.Resources`, so bench cells and tuning trials
        go through the same executors.
    :returns: nothing; call ``register`` once per executor.
    """

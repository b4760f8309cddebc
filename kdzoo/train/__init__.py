"""Training: the run driver (``runs``: distill, prepare, run_seed), the loop (``trainer``, ``step``),
teachers (``teacher``: resolve, load, freeze; ``teacher_cache``), ``checkpoint``, ``distributed``,
``gradient_paths`` and ``loggers``."""

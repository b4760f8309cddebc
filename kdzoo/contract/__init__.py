"""The contract: what a plugin author reads.

``strategy`` (the Strategy base class, Needs, Outputs, Batch, StepInfo, ...), ``params`` (``param`` and
``bounded``: how a strategy declares its parameters, their ranges and help), ``hookspecs`` (the pluggy
hooks a plugin implements), ``context`` (the RunContext a strategy is built with) and ``errors``.
This room imports nothing else from kdzoo at run time (``context``'s references to the data bundle,
the model wrapper and the zoo are type hints only). Plugins import these names from their door,
:mod:`kdzoo.plugin`.
"""

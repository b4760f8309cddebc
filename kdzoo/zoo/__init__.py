"""The zoo: plugin discovery (``plugins``), the built-in plugin (``builtin``), the shipped catalog
(``registry``), composition of strategy stacks (``stack``) and the ``kdzoo list`` views (``listing``)."""

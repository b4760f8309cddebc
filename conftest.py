"""Loads kdzoo's pytest plugin where kdzoo was installed before it had its ``pytest11`` entry point.

Once installed with the entry point (``make install`` reinstalls when pyproject.toml changes), pytest
has already loaded the plugin under this name and this line does nothing.
"""

pytest_plugins = ["kdzoo.pytest_fixtures"]

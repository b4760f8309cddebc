"""Shared kdzoo fixtures: isolated teacher cache and run index, one thread, the loaded zoo."""

from kdzoo.pytest_fixtures import kdzoo_isolated, zoo  # noqa: F401

from kdzoo.pytest_fixtures import kdzoo_isolated, zoo  # noqa: F401

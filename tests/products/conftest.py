"""The products tests' fixtures live in tests/products/fixtures.py, shared with the
quote tests under tests/policies."""

from tests.products.fixtures import *  # noqa: F403

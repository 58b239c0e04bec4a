"""Run every test here on both database backends (see tests/backends.py)."""

from tests.backends import backend

__all__ = ["backend"]

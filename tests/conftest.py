"""Shared test settings: one deterministic, CI-sized hypothesis profile, and tests/ on
sys.path so test modules can import the ``gradcheck`` helper."""
import os
import sys

from hypothesis import settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile("graphc", deadline=None, derandomize=True, max_examples=25,
                          print_blob=True)
settings.load_profile("graphc")

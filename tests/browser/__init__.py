"""Tests that drive a real, headless Chromium (see conftest.py)."""

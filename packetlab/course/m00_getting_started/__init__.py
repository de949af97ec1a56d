"""Module 00 · getting started."""

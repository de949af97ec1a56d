"""Module 07 · XDP."""

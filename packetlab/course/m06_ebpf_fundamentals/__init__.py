"""Module 06 · eBPF fundamentals."""

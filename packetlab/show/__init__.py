"""Presentation: text tables, notebook widgets and charts, Prometheus text."""

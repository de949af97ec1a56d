"""Module 01 · the OSI model."""

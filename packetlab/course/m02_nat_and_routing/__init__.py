"""Module 02 · NAT and routing."""

"""Test support: the host guard, the Run-All runner, pytest fixtures."""

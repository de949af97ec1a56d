"""Module 11b (capstone): the packet analyzer's lab — traces, topology and graded checks."""

"""Module 11c: an XDP DHCP fast path for a broadband gateway (topology, helpers, checks)."""

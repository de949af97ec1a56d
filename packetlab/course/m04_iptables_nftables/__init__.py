"""Module 04 · iptables and nftables."""

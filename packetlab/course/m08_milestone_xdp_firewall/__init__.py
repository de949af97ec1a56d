"""Module 08 · milestone: the XDP firewall (lab side; the tool is packetlab.tools.firewall)."""

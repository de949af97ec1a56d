"""Module 09 · milestone: the L4 load balancer (lab side; the tool is packetlab.tools.lb)."""

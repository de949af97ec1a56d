"""Module 10 · Kubernetes networking (lab side; tools: packetlab.tools.cni, packetlab.tools.netpol)."""

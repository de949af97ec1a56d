"""The products a learner builds: firewall, load balancer, CNI plugin, NetworkPolicy enforcer."""

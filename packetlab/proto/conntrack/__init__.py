"""A userspace connection tracker (module 03) following nf_conntrack's state machines."""

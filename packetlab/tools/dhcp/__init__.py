"""packetlab dhcp: a DHCP server for a broadband gateway, with an XDP fast path (module 11c).

The slow path (`server`, in userspace) owns the pools and the lease store; for every
bound lease it writes the subscriber's MAC and address into the maps of
bpf/11c-dhcp-fastpath.c (`cache`), which from then on answers that subscriber's
DISCOVER and REQUEST in the kernel. `wire` is the DHCP codec both sides agree on,
byte for byte.
"""

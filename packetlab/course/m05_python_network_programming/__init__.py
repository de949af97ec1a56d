"""Module 05 — Python network programming, on lab hosts.

One module per job:

* `echo`      — TCP/UDP echo servers three ways (threads, selectors/epoll, asyncio);
                ``python -m packetlab.course.m05_python_network_programming.echo --mode selectors --port 7000``
* `clients`   — one-shot TCP/UDP clients whose sockets live in a lab host's namespace
* `load`      — many concurrent clients against an echo server: requests/s and latency
                percentiles; ``python -m packetlab.course.m05_python_network_programming.load``
* `launch`    — start a server module in a lab host and wait until it is ready
* `proxy`     — an HTTP/1.1 forward proxy (absolute-form requests and CONNECT tunnels);
                ``python -m packetlab.course.m05_python_network_programming.proxy --port 3128``
* `decode`    — an Ethernet/802.1Q/IPv4/IPv6/TCP/UDP decoder written with `struct` only
* `sniffer`   — an AF_PACKET raw-socket sniffer (with VLAN tags restored from auxdata)
* `crosscheck`— compares `decode` with scapy's dissection of the same bytes, field by field
* `parsebench`— scapy vs dpkt vs `decode` on the same frames, packets per second
* `netlink`   — pyroute2: list links/addresses/routes, build a veth pair between namespaces

Everything that opens a socket does so inside a lab host's network namespace:
servers run as subprocesses started with ``host.popen`` (the lab stops them on
close), clients create their sockets inside ``packetlab.topo.netns.entered``.
"""

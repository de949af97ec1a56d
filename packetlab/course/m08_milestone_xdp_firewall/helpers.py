"""Module 08's lab helpers: what its notebook and checks call besides the checks themselves."""

from __future__ import annotations

POLICY = """\
On the server:
  * SSH (TCP port 22) only from the admin network 10.0.1.0/28;
  * web (TCP ports 80 and 443) from anyone;
  * ping (ICMP) limited to 5 packets per second per source;
  * everything else dropped."""

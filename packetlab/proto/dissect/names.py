"""The numbers in the headers and their names: EtherTypes, IP protocols, ICMP types, options, TCP flags."""

from __future__ import annotations

ETH_P = {
    0x0800: "IPv4",
    0x0806: "ARP",
    0x86DD: "IPv6",
    0x8100: "802.1Q",
    0x88A8: "802.1ad",
    0x88CC: "LLDP",
    0x8847: "MPLS",
}
IP_PROTO = {
    0: "IPv6 hop-by-hop",
    1: "ICMP",
    2: "IGMP",
    6: "TCP",
    17: "UDP",
    43: "IPv6 routing",
    44: "IPv6 fragment",
    47: "GRE",
    50: "ESP",
    58: "ICMPv6",
    59: "no next header",
    60: "IPv6 dest. options",
}
ICMP_TYPES = {
    0: "echo-reply",
    3: "destination-unreachable",
    5: "redirect",
    8: "echo-request",
    11: "time-exceeded",
    12: "parameter-problem",
    13: "timestamp",
    14: "timestamp-reply",
}
UNREACH_CODES = {
    0: "network unreachable",
    1: "host unreachable",
    2: "protocol unreachable",
    3: "port unreachable",
    4: "fragmentation needed and DF set",
    5: "source route failed",
    9: "network prohibited",
    10: "host prohibited",
    13: "administratively prohibited",
}
ICMP6_TYPES = {
    1: "destination-unreachable",
    2: "packet-too-big",
    3: "time-exceeded",
    4: "parameter-problem",
    128: "echo-request",
    129: "echo-reply",
    130: "MLD query",
    131: "MLDv1 report",
    133: "router-solicitation",
    134: "router-advertisement",
    135: "neighbor-solicitation",
    136: "neighbor-advertisement",
    137: "redirect",
    143: "MLDv2 report",
}
ND_OPTIONS = {
    1: "source link-layer address",
    2: "target link-layer address",
    3: "prefix information",
    4: "redirected header",
    5: "MTU",
}
ARP_OPS = {1: "who-has (request)", 2: "is-at (reply)"}
IPV4_OPTIONS = {
    0: "EOL",
    1: "NOP",
    7: "RR",
    68: "Timestamp",
    130: "Security",
    131: "LSRR",
    136: "StreamId",
    137: "SSRR",
    148: "RouterAlert",
}
TCP_OPTIONS = {
    0: "EOL",
    1: "NOP",
    2: "MSS",
    3: "WScale",
    4: "SAckOK",
    5: "SAck",
    8: "Timestamp",
    28: "UTO",
    29: "AO",
    30: "MPTCP",
    34: "TFO",
}
#: TCP flag bits, low to high (the 9-bit flags field as scapy and RFC 3168 lay it out).
TCP_FLAGS = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"]


def tcp_flag_names(flags: int) -> str:
    """'SYN ACK' for 0x12: the names of the set bits, in header order (high to low)."""
    names = [name for bit, name in enumerate(TCP_FLAGS) if flags & (1 << bit)]
    order = ["NS", "CWR", "ECE", "URG", "SYN", "FIN", "RST", "PSH", "ACK"]
    return " ".join(sorted(names, key=order.index)) or "none"

"""bpf/include/csum.h, no kernel: the pure-Python RFC 1624 eqn. 3 reference, property-tested
(hypothesis) against scapy's recomputation — equal whenever the changed bytes are not all zero;
for all-zero bytes eqn. 3 gives 0x0000 where only 0xffff verifies. tests/kernel/test_toolkit_bpf_csum.py
holds the C helpers and the real programs to this reference."""

from __future__ import annotations

import struct

from hypothesis import example, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

PROPS = settings(max_examples=300, deadline=None, derandomize=True, database=None)


# ---- 1. the reference ----------------------------------------------------------------------------


def fold(s: int) -> int:
    """End-around carry: add the carries back in until 16 bits remain."""
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def rfc1624(check: int, old: list[int], new: list[int]) -> int:
    """RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), for the 16-bit words `old` -> `new`."""
    s = (~check & 0xFFFF) + sum(~m & 0xFFFF for m in old) + sum(new)
    return ~fold(s) & 0xFFFF


def rfc1624_udp(check: int, old: list[int], new: list[int]) -> int:
    """UDP (RFC 768): a received 0 is "no checksum" and stays 0; a computed 0 is sent as 0xffff."""
    if check == 0:
        return 0
    return rfc1624(check, old, new) or 0xFFFF


def words(b: bytes) -> list[int]:
    return list(struct.unpack(f"!{len(b) // 2}H", b))


data16 = st.binary(min_size=2, max_size=64).filter(lambda b: len(b) % 2 == 0)


@PROPS
@given(data16, st.integers(0, 31), st.integers(0, 0xFFFF))
@example(b"\x08\x00\x00\x00", 0, 0x0000)  # echo request -> all-zero reply: the one exception
def test_eqn3_equals_recomputation_unless_the_bytes_become_all_zero(data, index, new):
    """Replace one 16-bit word: eqn. 3 from the old checksum vs scapy's checksum of the new bytes."""
    i = index % (len(data) // 2)
    changed = data[: 2 * i] + struct.pack("!H", new) + data[2 * i + 2 :]
    got = rfc1624(scapy_checksum(data), [words(data)[i]], [new])
    if any(changed):
        assert got == scapy_checksum(changed)
    else:  # all zero: the sum is +0, only ~(+0) = 0xffff verifies
        assert (got, scapy_checksum(changed)) == (0x0000, 0xFFFF)


@PROPS
@given(data16.filter(lambda b: len(b) >= 4), st.data())
def test_eqn3_for_a_32_bit_field_is_two_words_at_once(data, draw):
    i = draw.draw(st.integers(0, len(data) // 2 - 2))
    new = draw.draw(st.binary(min_size=4, max_size=4))
    changed = data[: 2 * i] + new + data[2 * i + 4 :]
    got = rfc1624(scapy_checksum(data), words(data[2 * i : 2 * i + 4]), words(new))
    assert got == scapy_checksum(changed) or not any(changed)


@PROPS
@given(st.integers(0, 0xFFFF), st.one_of(st.sampled_from([0x0000, 0xFFFF]), st.integers(0, 0xFFFF)))
def test_an_unchanged_field_leaves_the_checksum_alone(m, check):
    """m == m' changes nothing, 0x0000 included (RFC 1624 erratum 4782 claims it becomes 0xffff: that
    forgets the end-around carry); only 0xffff, the other way to write the same value, becomes 0x0000."""
    assert rfc1624(check, [m], [m]) == (0x0000 if check == 0xFFFF else check)


udp_packets = st.builds(
    lambda src, dst, sport, dport, payload: IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=4).map(str),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(max_size=40),
)


@PROPS
@given(udp_packets, st.ip_addresses(v=4).map(str), st.integers(0, 0xFFFF))
def test_udp_rule_equals_scapy_for_a_nat_rewrite(pkt, new_dst, new_dport):
    """Rewrite dst address and port as the load balancer does; scapy (which sends a computed 0 as 0xffff) agrees."""
    pkt = IP(bytes(pkt))
    out = pkt.copy()
    out.dst, out[UDP].dport = new_dst, new_dport
    del out[UDP].chksum
    want = IP(bytes(out))[UDP].chksum
    old_a, new_a = words(bytes(pkt)[16:20]), words(bytes(IP(dst=new_dst))[16:20])
    got = rfc1624_udp(rfc1624_udp(pkt[UDP].chksum, old_a, new_a), [pkt[UDP].dport], [new_dport])
    assert got == want
    assert rfc1624_udp(rfc1624_udp(0, old_a, new_a), [pkt[UDP].dport], [new_dport]) == 0  # "none" stays none

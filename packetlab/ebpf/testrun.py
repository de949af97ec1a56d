"""BPF_PROG_TEST_RUN: run a loaded program on packet bytes, without a network.

The kernel executes the program `repeat` times on a copy of `data` and reports
the return value, the (possibly rewritten) packet and the mean run time. This
is how verdicts are tested and how ns/packet is measured throughout the course.
"""

from __future__ import annotations

import ctypes
import errno
from dataclasses import dataclass

from packetlab.ebpf.syscall import BPF_PROG_TEST_RUN, TestRunAttr, bpf
from packetlab.errors import PacketlabError

XDP_VERDICTS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
TC_VERDICTS = {
    -1: "TC_ACT_UNSPEC",
    0: "TC_ACT_OK",
    1: "TC_ACT_RECLASSIFY",
    2: "TC_ACT_SHOT",
    3: "TC_ACT_PIPE",
    4: "TC_ACT_STOLEN",
    7: "TC_ACT_REDIRECT",
}
ETH_HLEN = 14
_ENOTSUPP = 524  # kernel-internal errno for 'operation not supported'


@dataclass
class TestRunResult:
    """What one BPF_PROG_TEST_RUN returned."""

    retval: int
    verdict: str
    data: bytes
    ns_per_run: int
    repeat: int

    __test__ = False  # not a pytest test class


def prog_test_run(
    prog_fd: int, data: bytes, *, repeat: int = 1, verdicts: dict[int, str] = XDP_VERDICTS, out_room: int = 512
) -> TestRunResult:
    """Run program `prog_fd` on `data` `repeat` times; return verdict, output and ns/run."""
    if len(data) < ETH_HLEN:
        raise PacketlabError(
            f"a test packet needs at least {ETH_HLEN} bytes, got {len(data)}",
            cause="BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header (EINVAL)",
            fix="build the frame with scapy's Ether() layer; to test truncation, cut after the Ethernet header",
        )
    inbuf = ctypes.create_string_buffer(bytes(data), len(data))
    outbuf = ctypes.create_string_buffer(len(data) + out_room)
    attr = TestRunAttr(
        prog_fd=prog_fd,
        data_size_in=len(data),
        data_size_out=len(outbuf),
        data_in=ctypes.addressof(inbuf),
        data_out=ctypes.addressof(outbuf),
        repeat=max(1, repeat),
    )
    try:
        bpf(BPF_PROG_TEST_RUN, attr)
    except OSError as exc:
        err = exc.errno
        raise PacketlabError(
            f"BPF_PROG_TEST_RUN failed: {exc.strerror}",
            cause="the kernel refused to test-run this program"
            + (" (not supported for this program type or packet size)" if err in (errno.EINVAL, _ENOTSUPP) else ""),
            fix="test-run XDP or tc programs on frames of 14..4096 bytes, as root",
        ) from None
    retval = ctypes.c_int32(attr.retval).value if verdicts is TC_VERDICTS else attr.retval
    return TestRunResult(
        retval=retval,
        verdict=verdicts.get(retval, str(retval)),
        data=outbuf.raw[: attr.data_size_out],
        ns_per_run=attr.duration,
        repeat=max(1, repeat),
    )

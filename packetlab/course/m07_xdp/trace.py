"""XDP actions switched at run time and the kernel's xdp tracepoints (exceptions, redirect errors)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from typing import Any

from packetlab.course.m07_xdp.counters import _attachment_ifindex
from packetlab.ebpf.fdinfo import prog_id
from packetlab.errors import PacketlabError

# ---- tracing XDP failures -----------------------------------------------------------------
EVENT_KINDS = {1: "exception", 2: "redirect error", 3: "devmap xmit error"}
XDP_ACTIONS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
XDP_ACTIONS_BY_NAME = {v: k for k, v in XDP_ACTIONS.items()}


def set_action(attachment: Any, action: str | int | None) -> None:
    """Tell bpf/07-xdp-actions.c which verdict to return (None: remove the entry -> XDP_PASS)."""
    table = attachment["action"]
    if action is None:
        with contextlib.suppress(KeyError):
            del table[ctypes.c_uint(0)]
        return
    value = action if isinstance(action, int) else XDP_ACTIONS_BY_NAME.get(str(action).upper())
    if value is None or value not in XDP_ACTIONS:
        raise PacketlabError(
            f"{action!r} is not an XDP action", fix="use XDP_ABORTED, XDP_DROP, XDP_PASS or XDP_TX (or 0..3)"
        )
    table[ctypes.c_uint(0)] = ctypes.c_uint(value)


def _errno_text(code: int) -> str:
    name = "EOPNOTSUPP" if code == errno.EOPNOTSUPP else errno.errorcode.get(code, str(code))
    return f"-{name} ({os.strerror(code)})"


class XdpTrace:
    """Count xdp:xdp_exception, xdp:xdp_redirect_err and xdp:xdp_devmap_xmit failures
    (bpf/07-xdp-trace.c).

    A redirect the target cannot take is reported in one of two places,
    depending on the kernel: refused up front in xdp_redirect_err (-EOPNOTSUPP,
    Linux 6.3+, where devmaps check the target's XDP features), or queued and
    dropped at flush in xdp_devmap_xmit (-ENXIO on Debian 12's 6.1). Listening
    on both shows whichever this kernel does.

    The tracepoints see every XDP program on the machine; `events()` keeps only
    the programs you name (devmap transmit errors name no program: those are
    kept by the ingress interface of the attachments you name), so other labs
    running at the same time do not leak in. Use as a context manager: the
    tracepoint programs are detached on exit.
    """

    SOURCE = "07-xdp-trace.c"

    def __init__(self) -> None:
        from packetlab.ebpf.loader import BPF_DIR, _import_bcc, capture_stderr

        bcc = _import_bcc()
        with capture_stderr() as err:
            try:
                self.bpf = bcc.BPF(src_file=str(BPF_DIR / self.SOURCE).encode(), cflags=[f"-I{BPF_DIR}"])
            except Exception as exc:
                failure: Exception | None = exc
            else:
                failure = None
        if failure is not None:
            raise PacketlabError(
                f"cannot load {self.SOURCE}",
                cause=(err[0].strip() or str(failure))[-800:],
                fix="`packetlab doctor` checks tracefs, headers and capabilities",
            )

    def events(self, *programs: Any) -> dict[tuple[str, str], int]:
        """{(kind, detail): count} for events of `programs` (attachments or loaded programs)."""
        ids = {prog_id(p) for p in programs}
        ingress = {_attachment_ifindex(p) for p in programs} - {None}
        out: dict[tuple[str, str], int] = {}
        for k, v in self.bpf[b"xdp_events"].items():
            if programs and k.who not in (ingress if k.kind == 3 else ids):
                continue
            kind = EVENT_KINDS.get(k.kind, str(k.kind))
            detail = XDP_ACTIONS.get(k.code, str(k.code)) if k.kind == 1 else _errno_text(k.code)
            out[(kind, detail)] = out.get((kind, detail), 0) + int(v.value)
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.bpf.cleanup()

    def __enter__(self) -> XdpTrace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

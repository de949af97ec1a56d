"""Get the verifier's own log when bcc reports a rejection without it.

bcc prints the verifier log for most rejections, but not all: when the kernel
answers E2BIG (the verifier gave up on complexity: "The sequence of 8193 jumps
is too complex", "BPF program is too large. Processed 1000001 insn") bcc prints
only its own guess, "Program too large (65 insns), at most 4096 insns", and
the log the kernel wrote is thrown away. A learner then sees neither the
reason nor the line.

Here the same program is loaded once more, by the same module, with a log
buffer that grows until the whole log fits (`bpfsys.load_logged`):

1. through bcc's own loader (``bcc_func_load``) with our buffer: the same
   bytecode *and* the same BTF line info, so the log carries the
   ``; source line @ file:line`` annotations that map it back to the source;
2. if that still yields nothing (bcc refused before the kernel saw it), the
   bytecode bcc compiled (``BPF.dump_func``) goes straight to bpf(2) through
   `packetlab.ebpf.syscall`: the verifier's words without source annotations.

Both need the bcc module still alive: its maps' fds are baked into the bytecode.
"""

from __future__ import annotations

import ctypes
import os
import re
from typing import Any

from packetlab.ebpf import syscall as bpfsys

LOG_LEVEL = 1  # every instruction the verifier walks, with source lines; 2 adds register states
_KERNEL_LOG = re.compile(r"^\d+: |^processed \d+ insns", re.M)


def has_verifier_log(text: str) -> bool:
    """True if `text` holds a verifier log (instruction lines or the final 'processed N insns')."""
    return bool(_KERNEL_LOG.search(text))


def bcc_logged_load(bpf: Any, function: str, prog_type: int) -> bpfsys.LoggedLoad:
    """Load `function` of bcc module `bpf` again through bcc's loader, with our log buffer."""
    import bcc

    lib, module, name = bcc.lib, bpf.module, function.encode()

    def load(buf: ctypes.Array) -> int:
        fd = lib.bcc_func_load(
            module,
            prog_type,
            name,
            lib.bpf_function_start(module, name),
            lib.bpf_function_size(module, name),
            lib.bpf_module_license(module),
            lib.bpf_module_kern_version(module),
            LOG_LEVEL,
            buf,
            len(buf),
            None,
            -1,
        )
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return fd

    return bpfsys.load_logged(load)


def raw_logged_load(bpf: Any, function: str, prog_type: int) -> bpfsys.LoggedLoad:
    """Load the bytecode bcc compiled for `function` with bpf(2) directly (no BTF, so no source lines)."""
    import bcc

    module, name = bpf.module, function.encode()
    license = ctypes.string_at(bcc.lib.bpf_module_license(module)).decode() or "GPL"
    insns = bpf.dump_func(name)
    return bpfsys.load_logged(
        lambda buf: bpfsys.prog_load(
            prog_type,
            insns,
            license=license,
            name=function[:15],
            log=buf,
            log_level=LOG_LEVEL,
            kern_version=bcc.lib.bpf_module_kern_version(module),
        )
    )


def recover_verifier_log(bpf: Any, function: str, prog_type: int) -> str:
    """The verifier's log for a program bcc failed to load, or "" if the kernel gives none.

    If the program loads this time after all (it should not), it is closed again at once.
    """
    for attempt in (bcc_logged_load, raw_logged_load):
        result = attempt(bpf, function, prog_type)
        if result.fd is not None:
            os.close(result.fd)
        if result.log.strip():
            note = "\n(log truncated: it outgrew the buffer)" if result.truncated else ""
            return result.log + note
    return ""

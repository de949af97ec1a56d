"""A lab left open is removed when its process ends — also with XDP attached (bcc registers its
own atexit cleanup after ours, so it runs first)."""

from __future__ import annotations

import os

from packetlab.paths import REPO_ROOT
from packetlab.testing.child import PYTHON
from packetlab.testing.fixtures import wait_until_gone


def test_kernel_shutdown_with_xdp_attached_removes_the_lab():
    """Only atexit may clean here (guardian off): bcc's own atexit cleanup runs first and frees
    the compiled module; closing the lab must not trip over it."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.kernel_spec.argv = [PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    km.start_kernel(cwd=str(REPO_ROOT), env={**os.environ, "PACKETLAB_GUARDIAN": "0"})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(
            "from packetlab import Lab\nlab = Lab('tkx').start()\nh1, h2 = lab.host('h1'), lab.host('h2')\n"
            "lab.link(h1, h2, ip='10.62.0.1/30', peer_ip='10.62.0.2/30')\n"
            "xdp = h2.attach_xdp('tests/kernel/bpf/toolkit_counter.c', dev='eth0')",
            timeout=180,
        )
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert wait_until_gone("tkx", timeout=15), "a kernel shut down with XDP attached left its lab behind"

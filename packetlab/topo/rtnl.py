"""pyroute2's IPRoute on a thread of its own, so it works under any running event loop.

Why: pyroute2 0.9's synchronous ``IPRoute`` is a wrapper around its asyncio core.
Every call ends in ``event_loop.run_until_complete(...)`` on the loop it finds
with ``asyncio.get_running_loop()`` — and inside Jupyter (or any asyncio
program) that is the caller's own loop, already running, so each call fails
with "This event loop is already running". Patching that loop to be re-entrant
(nest_asyncio) makes it run the caller's *other* queued tasks in the middle of
a netlink call, which is how JupyterLab's Run All broke. The toolkit never
touches the caller's loop (DESIGN principle 8): instead every IPRoute lives on
one dedicated daemon thread, which has no running loop, so pyroute2 makes and
owns a private loop there, exactly as in a plain script.

    from packetlab import rtnl
    with rtnl.iproute(netns="gs-h1") as ipr:        # same methods as pyroute2.IPRoute
        idx = ipr.link_lookup(ifname="eth0")[0]
        ipr.link("set", index=idx, state="up")

Each method call is sent to the thread and waited for; results and exceptions
(``NetlinkError`` included) come back unchanged. Dumps come back as tuples.
pyroute2 keeps its socket and loop per thread, which is why the IPRoute object
is created, used and closed on that one thread and never handed out.
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import GeneratorType
from typing import Any, TypeVar

T = TypeVar("T")

# Devices the kernel puts in *every* new namespace once a tunnel module is loaded (ipip, ip_gre,
# sit, ip6_tunnel, ip6_gre, ip_vti): the module's fallback device, down and unused. Whether a
# namespace shows them depends on what else ran on the machine, not on the lab
# (sysctl net.core.fb_tunnels_only_for_init_net=1 or 2 keeps them out of new namespaces).
FALLBACK_TUNNELS = frozenset(
    {"tunl0", "gre0", "gretap0", "erspan0", "sit0", "ip6tnl0", "ip6gre0", "ip6gretap0", "ip_vti0", "ip6_vti0"}
)

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class _Worker:
    """One daemon thread that runs submitted callables in order."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="packetlab-netlink", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, never lost here
                future.set_exception(exc)

    def run(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self.thread:
            return fn()  # already here (e.g. ipr.poll(ipr.addr, ...))
        future: Future = Future()
        self.jobs.put((fn, future))
        return future.result()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _forget_worker() -> None:
    """After fork() the child has no such thread: it starts its own on first use."""
    global _worker, _worker_lock
    _worker, _worker_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_worker)


def run_on_netlink_thread(fn: Callable[[], T]) -> T:
    """Run `fn()` on the toolkit's netlink thread and return its result (or raise its exception)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _Worker()
        worker = _worker
    return worker.run(fn)


def _setns(fd: int) -> None:
    """setns(2) for this thread only (the netlink thread, never the caller's)."""
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _open_in(ns_fd: int, **kwargs: Any) -> Any:
    """IPRoute() whose socket is created in namespace `ns_fd` (this thread enters it, then returns)."""
    from pyroute2 import IPRoute

    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(ns_fd)
        try:
            return IPRoute(**kwargs)  # the netlink socket belongs to ns_fd from now on
        finally:
            _setns(here)
    finally:
        os.close(here)


class IPRouteOnThread:
    """A pyroute2 IPRoute that lives on the netlink thread; use it like IPRoute.

    Method calls (``link``, ``addr``, ``route``, ``link_lookup``, ``get_links``,
    ``poll`` ...) run there; generators are turned into tuples before they come
    back, so nothing of pyroute2's loop leaks to the caller's thread.
    """

    def __init__(self, netns: str | int | None = None, **kwargs: Any) -> None:
        self._ipr: Any = None
        if isinstance(netns, str):
            from pyroute2 import IPRoute

            self._ipr = run_on_netlink_thread(lambda: IPRoute(netns=netns, **kwargs))
            return
        # None: the caller's own namespace (the one this thread is in right now); int: that namespace fd
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC) if netns is None else netns
        try:
            self._ipr = run_on_netlink_thread(lambda: _open_in(fd, **kwargs))
        finally:
            if netns is None:
                os.close(fd)

    def __getattr__(self, name: str) -> Any:
        ipr = self.__dict__.get("_ipr")
        if ipr is None:
            raise AttributeError(name)
        value = run_on_netlink_thread(lambda: getattr(ipr, name))
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            def on_thread() -> Any:
                result = value(*args, **kwargs)
                return tuple(result) if isinstance(result, GeneratorType) else result

            return run_on_netlink_thread(on_thread)

        call.__name__ = name
        return call

    def close(self) -> None:
        ipr, self._ipr = self._ipr, None
        if ipr is not None:
            run_on_netlink_thread(ipr.close)

    def __enter__(self) -> IPRouteOnThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iproute(netns: str | int | None = None, **kwargs: Any) -> IPRouteOnThread:
    """pyroute2's ``IPRoute(netns=..., **kwargs)``, safe under a running event loop.

    ``netns`` is a namespace name or path (as pyroute2 takes it; note pyroute2
    *creates* a missing named namespace unless ``flags=0``), an open namespace
    fd, or None for the caller's current namespace. Use it as a context manager.
    """
    return IPRouteOnThread(netns, **kwargs)

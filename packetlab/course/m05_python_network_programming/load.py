"""Many concurrent clients against an echo server: requests/s and latency percentiles.

Runs as its own process inside the client host (so the load generator does not
share a Python interpreter — or a GIL — with the notebook)::

    python -m packetlab.course.m05_python_network_programming.load --server 10.0.5.2 --port 7000 --clients 100 --requests 50

Every client opens one TCP connection, all connections are made first, then all
clients start together; each sends `size` bytes and waits for the whole echo
before the next request (closed loop). The result is one JSON line.
`measure()` runs it from a notebook and samples the server's thread count meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from packetlab.errors import PacketlabError

if TYPE_CHECKING:
    from packetlab.topo.host import Host
    from packetlab.topo.servers import Server


@dataclass
class LoadResult:
    """One closed-loop load run."""

    clients: int
    requests: int  # completed request/response round trips
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    server_threads: int = 0  # peak thread count of the server process during the run

    HEADERS = ("clients", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "server threads")

    def row(self, label: str | None = None) -> list[object]:
        cells: list[object] = [
            self.clients,
            self.requests,
            self.errors,
            round(self.rps),
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.server_threads,
        ]
        return [label, *cells] if label is not None else cells


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


class _Gate:
    """Counts clients as they connect (or fail to); opens once all of them have."""

    def __init__(self, clients: int) -> None:
        self.waiting, self.all_in, self.start = clients, asyncio.Event(), asyncio.Event()

    def arrived(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.all_in.set()


async def _client(
    host: str, port: int, requests: int, payload: bytes, gate: _Gate, latencies: list[float], timeout: float
) -> int:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    finally:
        gate.arrived()
    errors = 0
    try:
        await gate.start.wait()
        for _ in range(requests):
            t0 = time.perf_counter()
            writer.write(payload)
            try:
                await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                errors += 1
                break
            latencies.append(time.perf_counter() - t0)
    finally:
        writer.close()
    return errors


async def run(host: str, port: int, clients: int, requests: int, size: int, timeout: float = 10.0) -> LoadResult:
    """Connect `clients` connections, then run them all at once; measure."""
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    gate = _Gate(clients)
    latencies: list[float] = []
    tasks = [
        asyncio.create_task(_client(host, port, requests, payload, gate, latencies, timeout)) for _ in range(clients)
    ]
    await asyncio.wait_for(gate.all_in.wait(), timeout + 1)  # every connection made (or failed)
    t0 = time.perf_counter()
    gate.start.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    seconds = time.perf_counter() - t0
    errors = sum(r if isinstance(r, int) else 1 for r in results)
    lat = sorted(x * 1000 for x in latencies)
    return LoadResult(
        clients,
        len(lat),
        errors,
        seconds,
        len(lat) / seconds if seconds else 0.0,
        percentile(lat, 50),
        percentile(lat, 90),
        percentile(lat, 99),
        lat[-1] if lat else 0.0,
    )


def measure(
    client: Host,
    server_ip: str,
    port: int,
    *,
    clients: int = 50,
    requests: int = 50,
    size: int = 64,
    server: Server | None = None,
    timeout: float = 120.0,
) -> LoadResult:
    """Run the load generator in `client` (a subprocess in its namespace) and return its result."""
    peak = [0]
    done = threading.Event()

    def sample(server: Server) -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], server.threads())

    sampler = threading.Thread(target=sample, args=(server,), daemon=True) if server is not None else None
    if sampler:
        sampler.start()
    try:
        out = client.run(
            [
                sys.executable,
                "-m",
                "packetlab.course.m05_python_network_programming.load",
                "--server",
                server_ip,
                "--port",
                str(port),
                "--clients",
                str(clients),
                "--requests",
                str(requests),
                "--size",
                str(size),
            ],
            timeout=timeout,
        )
    finally:
        done.set()
        if sampler:
            sampler.join(timeout=1)
    if not out.ok:
        raise PacketlabError(
            f"the load generator failed in {client.name}",
            cause=(out.stderr or out.stdout).strip()[-600:],
            fix=f"is the echo server listening on {server_ip}:{port}?",
        )
    result = LoadResult(
        **{k: v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items() if k != "server_threads"}
    )
    result.server_threads = peak[0]
    if result.requests == 0:
        raise PacketlabError(
            f"no request succeeded: {result.errors} of {clients} clients failed",
            cause=f"nothing answered on {server_ip}:{port} from {client.name}",
            fix="start the echo server first (launch.start) and check address and port",
        )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m packetlab.course.m05_python_network_programming.load", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=7000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=50, help="per client")
    ap.add_argument("--size", type=int, default=64, help="bytes per request")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args(argv)
    try:
        result = asyncio.run(run(args.server, args.port, args.clients, args.requests, args.size, args.timeout))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

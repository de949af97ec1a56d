"""A static HTTP origin server in a lab host (Python's http.server over a temp directory).

The proxy needs a real server behind it. `StaticSite` writes files into a fresh
temporary directory, serves it with ``python -m http.server`` inside the host,
and removes the directory again when closed (the lab stops the process anyway).

    with StaticSite(s, "10.0.2.2", 8000, {"big.bin": os.urandom(16 << 20)}) as site:
        site.sha256("big.bin")
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING

from packetlab.topo import servers as launch

if TYPE_CHECKING:
    from packetlab.topo.host import Host


def random_blob(size: int, seed: int = 5) -> bytes:
    """`size` pseudo-random bytes (reproducible, and fast: no os.urandom for megabytes)."""
    import random

    return random.Random(seed).randbytes(size)


class StaticSite:
    """http.server on `ip`:`port` in `host`, serving `files` (name -> bytes)."""

    def __init__(self, host: Host, ip: str, port: int, files: dict[str, bytes]) -> None:
        self.host, self.ip, self.port = host, ip, port
        self.files = dict(files)
        self.directory: str | None = None
        self.server: launch.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def start(self) -> StaticSite:
        self.directory = tempfile.mkdtemp(prefix="packetlab-web-")
        os.chmod(self.directory, 0o755)
        for name, data in self.files.items():
            with open(os.path.join(self.directory, name), "wb") as f:
                f.write(data)
        try:
            self.server = launch.start(
                self.host,
                [
                    sys.executable,
                    "-u",
                    "-m",
                    "http.server",
                    "--bind",
                    self.ip,
                    "--directory",
                    self.directory,
                    str(self.port),
                ],
                ready="Serving HTTP",
            )
        except BaseException:
            self.close()
            raise
        return self

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()

    def log(self) -> list[str]:
        """http.server's access log lines (who asked for what: the proxy, not the client)."""
        return [line for line in (self.server.output if self.server else []) if '"' in line]

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> StaticSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class CurlResult:
    """What curl reported (-w) and the sha256 of the body it downloaded."""

    def __init__(
        self, argv: list[str], exit_code: int, status: int, size: int, seconds: float, sha256: str | None, stderr: str
    ) -> None:
        self.argv, self.exit_code, self.status, self.size = argv, exit_code, status, size
        self.seconds, self.sha256, self.stderr = seconds, sha256, stderr

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and 200 <= self.status < 300

    @property
    def mbytes_per_s(self) -> float:
        return self.size / self.seconds / 1e6 if self.seconds else 0.0

    def __repr__(self) -> str:
        if self.exit_code:
            return f"<curl exit {self.exit_code}: {self.stderr.strip()[:120]}>"
        return f"<curl HTTP {self.status}, {self.size:,} bytes in {self.seconds:.3f} s>"


def curl(host: Host, url: str, *, proxy: str | None = None, tunnel: bool = False, max_time: float = 30) -> CurlResult:
    """Run curl in `host` (optionally through `proxy`; `tunnel` = CONNECT with -p) and hash the body."""
    fd, path = tempfile.mkstemp(prefix="packetlab-curl-")
    os.close(fd)
    argv = ["curl", "-sS", "-o", path, "-w", "%{http_code} %{size_download} %{time_total}", "--max-time", str(max_time)]
    if proxy:
        argv += ["-x", proxy] + (["-p"] if tunnel else [])
    argv.append(url)
    try:
        out = host.run(argv, timeout=max_time + 10)
        fields = (out.stdout.split() + ["0", "0", "0"])[:3]
        digest = None
        if out.ok:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            digest = h.hexdigest()
        return CurlResult(argv, out.returncode, int(fields[0]), int(fields[1]), float(fields[2]), digest, out.stderr)
    finally:
        os.unlink(path)

"""An HTTP/1.1 forward proxy: plain requests in absolute form, and CONNECT tunnels.

    python -m packetlab.course.m05_python_network_programming.proxy --port 3128          # then: curl -x http://PROXY:3128 http://...

What a forward proxy does, and what this one does:

* A client configured with a proxy sends it the *absolute* URL:
  ``GET http://10.0.2.2:8000/file HTTP/1.1``. The proxy connects to
  10.0.2.2:8000 and sends the origin-form ``GET /file HTTP/1.1``, minus the
  hop-by-hop headers (``Connection``, ``Proxy-Connection``, ``Keep-Alive``,
  ``Proxy-Authorization``, ``TE``, ``Upgrade`` and any named in
  ``Connection``), plus ``Connection: close`` and a ``Via`` line.
* ``CONNECT host:port HTTP/1.1`` asks for a raw TCP tunnel (this is how HTTPS
  goes through a proxy): the proxy connects, answers
  ``HTTP/1.1 200 Connection established`` and from then on copies bytes both
  ways without looking at them, passing on each side's half-close.
* Bodies are *streamed*: bytes are copied in chunks as they arrive and
  ``await drain()`` waits while the receiver is slow, so memory use does not
  grow with the size of a download.
* One request per client connection; the proxy closes after the response
  (it says so with ``Connection: close``). Errors get a real status:
  400 for a malformed request, 502 when the origin refuses, 504 when it does
  not answer. SIGTERM stops it cleanly (exit status 0).

The proxy goes wherever a client asks. It is safe here because it runs in a
lab namespace whose only routes lead to other lab namespaces.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit

HOP_BY_HOP = {
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
}
MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024
VIA = "1.1 packetlab-proxy"


class BadRequest(Exception):
    """The client's request cannot be proxied; carries the status line to answer with."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (everything up to the blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
        raise BadRequest(400, "Bad Request", "undecodable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "Bad Request", f"malformed request line: {lines[0][:80]!r}")
    req = Request(parts[0], parts[1], parts[2])
    for line in lines[1:]:
        if not line:
            continue
        if ":" not in line or line[0] in " \t":
            raise BadRequest(400, "Bad Request", f"malformed header line: {line[:80]!r}")
        name, value = line.split(":", 1)
        req.headers.append((name.strip(), value.strip()))
    return req


def origin_request(req: Request) -> tuple[str, int, bytes]:
    """(host, port, head bytes) to send to the origin for an absolute-form request."""
    url = urlsplit(req.target)
    if url.scheme != "http" or not url.hostname:
        if req.target.startswith("/"):
            raise BadRequest(
                400,
                "Bad Request",
                "this is a forward proxy: send the absolute URL (GET http://host/path), as curl -x does",
            )
        raise BadRequest(
            501,
            "Not Implemented",
            f"only http:// URLs are proxied directly (use CONNECT for {url.scheme or 'other'} traffic)",
        )
    try:
        port = url.port or 80
    except ValueError:
        raise BadRequest(400, "Bad Request", f"bad port in {req.target[:80]!r}") from None
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    drop = set(HOP_BY_HOP)
    for token in (req.header("connection") or "").split(","):
        drop.add(token.strip().lower())  # headers the client marked hop-by-hop
    lines = [f"{req.method} {path} {req.version}"]
    lines += [f"{k}: {v}" for k, v in req.headers if k.lower() not in drop]
    if req.header("host") is None:
        lines.append(f"Host: {url.netloc}")
    lines += [f"Via: {VIA}", "Connection: close", "", ""]
    return url.hostname, port, "\r\n".join(lines).encode("latin-1")


def rewrite_response_head(head: bytes) -> bytes:
    """The origin's status line and headers, with our own ``Connection: close`` (we close after it)."""
    lines = head.decode("latin-1").split("\r\n")
    drop = set(HOP_BY_HOP) - {"proxy-authenticate"}
    for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line):
        if k.strip().lower() == "connection":
            drop |= {t.strip().lower() for t in v.split(",")}
    kept = [lines[0]] + [line for line in lines[1:] if line and line.split(":", 1)[0].strip().lower() not in drop]
    return "\r\n".join(kept + [f"Via: {VIA}", "Connection: close", "", ""]).encode("latin-1")


def split_authority(target: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' of a CONNECT request."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise BadRequest(400, "Bad Request", f"CONNECT needs host:port, got {target[:80]!r}")
    return host.strip("[]"), int(port)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "Request Header Fields Too Large", f"head larger than {MAX_HEAD} bytes") from None


def error_response(status: int, reason: str, detail: str) -> bytes:
    body = f"{status} {reason}: {detail}\n".encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        f"Via: {VIA}\r\nConnection: close\r\n\r\n"
    ).encode() + body


# --8<-- [start:pipe]
async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Copy until EOF, then half-close the other side; returns bytes copied."""
    total = 0
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()  # slow receiver: stop reading instead of buffering
            total += len(chunk)
        if writer.can_write_eof():
            writer.write_eof()  # pass the half-close on (FIN), keep reading the other way
    except (ConnectionError, OSError):
        pass
    return total


# --8<-- [end:pipe]


class Proxy:
    """The server: one asyncio task per client connection."""

    def __init__(self, connect_timeout: float = 10.0, verbose: bool = False) -> None:
        self.connect_timeout, self.verbose = connect_timeout, verbose
        self.head_timeout = 30.0
        self.stats = {"requests": 0, "tunnels": 0, "errors": 0, "bytes_to_client": 0}

    def log(self, msg: str) -> None:
        if self.verbose:
            print(msg, file=sys.stderr, flush=True)

    async def open_origin(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.open_connection(host, port), self.connect_timeout)
        except asyncio.TimeoutError:
            raise BadRequest(
                504, "Gateway Timeout", f"{host}:{port} did not answer in {self.connect_timeout} s"
            ) from None
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)  # e.g. "Connection refused"
            raise BadRequest(502, "Bad Gateway", f"cannot connect to {host}:{port}: {why}") from None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        origin_writer = None
        try:
            try:
                req = parse_head(await asyncio.wait_for(read_head(reader), self.head_timeout))
            except asyncio.TimeoutError:
                raise BadRequest(408, "Request Timeout", f"no complete request head in {self.head_timeout} s") from None
            if req.method == "CONNECT":
                host, port = split_authority(req.target)
                o_reader, origin_writer = await self.open_origin(host, port)
                writer.write(b"HTTP/1.1 200 Connection established\r\nVia: " + VIA.encode() + b"\r\n\r\n")
                await writer.drain()
                self.stats["tunnels"] += 1
                up, down = await asyncio.gather(pipe(reader, origin_writer), pipe(o_reader, writer))
                self.stats["bytes_to_client"] += down
                self.log(f"CONNECT {host}:{port} up {up} down {down}")
                return
            host, port, head = origin_request(req)
            o_reader, origin_writer = await self.open_origin(host, port)
            origin_writer.write(head)
            upload = asyncio.create_task(pipe(reader, origin_writer))  # a request body, if any
            try:
                try:
                    resp_head = await o_reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    raise BadRequest(502, "Bad Gateway", f"{host}:{port} sent no valid response head") from None
                writer.write(rewrite_response_head(resp_head))
                down = await pipe(o_reader, writer)
            finally:
                upload.cancel()
                await asyncio.gather(upload, return_exceptions=True)
            self.stats["requests"] += 1
            self.stats["bytes_to_client"] += down
            self.log(f"{req.method} {req.target} -> {resp_head.split(b' ', 2)[1].decode()} {down} bytes")
        except BadRequest as exc:
            self.stats["errors"] += 1
            self.log(f"error {exc.status}: {exc.detail}")
            try:
                writer.write(error_response(exc.status, exc.reason, exc.detail))
                await writer.drain()
            except (ConnectionError, OSError):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away mid-request
        finally:
            for w in (origin_writer, writer):
                if w is not None:
                    w.close()
                    try:
                        await w.wait_closed()
                    except (ConnectionError, OSError):
                        pass


async def serve(bind: str, port: int, proxy: Proxy) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(proxy.handle, bind, port, limit=MAX_HEAD, reuse_address=True)
    print(f"ready proxy {bind}:{port}", flush=True)
    async with server:
        await stop.wait()
    print(f"stopped: {proxy.stats}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m packetlab.course.m05_python_network_programming.proxy", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=3128)
    ap.add_argument("--connect-timeout", type=float, default=10.0)
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request on stderr")
    args = ap.parse_args(argv)
    try:
        asyncio.run(serve(args.bind, args.port, Proxy(args.connect_timeout, args.verbose)))
    except OSError as exc:
        print(f"error: cannot listen on {args.bind}:{args.port}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

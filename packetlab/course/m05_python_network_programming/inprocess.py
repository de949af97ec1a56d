"""Run an asyncio server *inside this process* but in a lab host's namespace.

For a quick experiment (or an exercise checking your handler) a subprocess is
heavy; a thread with its own event loop is enough. The listening socket is
created inside ``netns.entered(host.namespace)``, so it belongs to the host,
and every connection accepted from it does too. The thread stops cleanly:
`stop()` closes the server, cancels open connections and joins the thread —
no hang when a notebook cell or a test ends.

    async def handle(reader, writer): ...
    with AsyncioServerThread(h2, handle, port=8000) as srv:
        clients.tcp_exchange(h1, "10.0.1.2", 8000, b"hi\\n")
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from packetlab.errors import PacketlabError
from packetlab.topo import netns

if TYPE_CHECKING:
    from packetlab.topo.host import Host

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class AsyncioServerThread:
    """asyncio.start_server(handler) on `bind`:`port` in `host`, in a daemon thread."""

    def __init__(self, host: Host, handler: Handler, port: int, bind: str = "0.0.0.0") -> None:
        self.host, self.handler, self.port, self.bind = host, handler, port, bind
        self.errors: list[BaseException] = []  # exceptions raised by the handler
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    def start(self) -> AsyncioServerThread:
        with netns.entered(self.host.namespace):
            sock = socket.socket(socket.AF_INET6 if ":" in self.bind else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.bind, self.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise PacketlabError(
                f"cannot listen on {self.bind}:{self.port} in {self.host.name}",
                cause=str(exc),
                fix="is another server already on that port there?",
            ) from None
        self._thread = threading.Thread(
            target=self._run, args=(sock,), daemon=True, name=f"asyncio-server-{self.host.name}-{self.port}"
        )
        self._thread.start()
        if not self._ready.wait(5) or self._startup_error is not None:
            self.stop()
            raise PacketlabError(
                f"the asyncio server in {self.host.name} did not start", cause=str(self._startup_error or "timeout")
            )
        return self

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._main(sock))
        except BaseException as exc:  # reported by start()/stop(), never lost
            self._startup_error = exc
            self._ready.set()

    async def _main(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self.handler(reader, writer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the server alive; remember what went wrong
                self.errors.append(exc)
            finally:
                writer.close()

        server = await asyncio.start_server(guarded, sock=sock)
        self._ready.set()
        await self._stop.wait()
        server.close()  # stop accepting
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:  # connections still open: cancel them
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(server.wait_closed(), 2)
        except asyncio.TimeoutError:
            pass

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():  # pragma: no cover - a handler stuck in blocking code
                raise PacketlabError(
                    "the asyncio server thread did not stop within 5 s",
                    cause="a handler blocks the event loop (time.sleep? a blocking socket call?)",
                    fix="use await asyncio.sleep()/await reader.read() in coroutines",
                )

    def __enter__(self) -> AsyncioServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

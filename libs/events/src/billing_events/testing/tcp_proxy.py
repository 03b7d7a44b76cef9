"""A loopback TCP proxy that a test can cut and restore: a network outage on demand.

Put it between a service and its database (or broker): the service is given the proxy's port.
``cut()`` aborts every open connection (both sides see a reset, as when a link or the server
dies) and stops listening, so new connections are refused; ``restore()`` listens again on the
same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = port
        self.accepted = 0
        """Connections accepted since the proxy was made (reconnections show up here)."""
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._request_seen: asyncio.Event | None = None
        self._request_bytes = 1

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        """A proxy to the host and port of a database URL (``postgresql+asyncpg://u@h:p/db``)."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def url_through(self, url: str) -> str:
        """The same URL with the proxy's address in place of the server's."""
        parts = urlsplit(url)
        userinfo, _, _ = parts.netloc.rpartition("@")
        netloc = f"{userinfo}@{self.listen_host}:{self.port}" if userinfo else f"{self.listen_host}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def open_connections(self) -> int:
        return len(self._writers) // 2

    @property
    def is_up(self) -> bool:
        return self._server is not None

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted in the instant of a cut
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self.accepted += 1
        self._writers |= {client_writer, server_writer}
        unanswered = [0]  # bytes the client sent since the server last answered
        pipes = [
            asyncio.create_task(self._pipe(client_reader, server_writer, unanswered, upstream=True)),
            asyncio.create_task(self._pipe(server_reader, client_writer, unanswered, upstream=False)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            for writer in (client_writer, server_writer):
                self._writers.discard(writer)
                writer.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, unanswered: list[int], *, upstream: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                if not upstream:
                    unanswered[0] = 0
                else:
                    unanswered[0] += len(data)
                    if self._request_seen is not None and unanswered[0] >= self._request_bytes:
                        self._request_seen.set()
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()  # one side gone: the whole connection goes

    async def cut(self, *, mid_request: bool = False, min_bytes: int = 1, wait: float = 10.0) -> None:
        """Refuse new connections and reset every open one.

        ``mid_request``: first wait (up to ``wait`` seconds) for a client to send a request (at
        least ``min_bytes`` unanswered bytes: a big one is a write in the middle of a
        transaction), and cut right after it reached the server, before the answer comes back.
        """
        if mid_request:
            self._request_bytes = max(1, min_bytes)
            self._request_seen = asyncio.Event()
            try:
                await asyncio.wait_for(self._request_seen.wait(), wait)
            except TimeoutError:
                pass
            finally:
                self._request_seen = None
        self.cuts += 1
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def restore(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            await self.start()

    async def stop(self) -> None:
        await self.cut()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

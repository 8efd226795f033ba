"""A loopback TCP proxy that adds latency to every request, for benchmarks.

Clients connect to ``127.0.0.1:<port>``; each piece of data a client sends
(an HTTP request, for the storage clients used here) waits ``delay`` seconds
before it goes on to the server at ``127.0.0.1:<target_port>``; replies pass
at once. ``requests`` counts the pieces forwarded. Only loopback addresses
are ever used.
"""

from __future__ import annotations

import asyncio
import socket
import threading

_HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((_HOST, 0))
        return probe.getsockname()[1]


class LatencyProxy:
    """Forward ``127.0.0.1:port`` to ``127.0.0.1:target_port`` with a delay.

    Example:
      ``proxy = LatencyProxy(9000, 0.02); ...; proxy.stop()``
    """

    def __init__(self, target_port: int, delay: float):
        self.target_port = target_port
        self.delay = delay
        self.port = _free_port()
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, _HOST, self.port)
        )
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())

    async def _handle(self, client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_connection(
            _HOST, self.target_port
        )
        await asyncio.gather(
            self._pipe(client_reader, server_writer, delayed=True),
            self._pipe(server_reader, client_writer, delayed=False),
        )

    async def _pipe(self, reader, writer, delayed: bool) -> None:
        try:
            while data := await reader.read(1 << 16):
                if delayed:
                    self.requests += 1
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        """Stop forwarding (open connections are dropped)."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

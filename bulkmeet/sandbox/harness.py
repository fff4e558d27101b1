"""Ways to run a sandbox: on the caller's event loop (start_sandbox), on its own loop in a
background thread (SandboxThread), or until told to stop (serve, for `bulkmeet sandbox`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from types import TracebackType

from .app import Sandbox, loopback_host
from .settings import DEFAULT_SETTINGS, SandboxSettings
from .state import SandboxState


async def start_sandbox(
    settings: SandboxSettings = DEFAULT_SETTINGS, *, host: str = "127.0.0.1", port: int = 0
) -> Sandbox:
    """Start a sandbox on this event loop; port 0 picks a free one (see `.url`)."""
    sandbox = Sandbox(settings)
    await sandbox.start(host=host, port=port)
    return sandbox


async def serve(
    settings: SandboxSettings = DEFAULT_SETTINGS, *, stop: asyncio.Event,
    host: str = "127.0.0.1", port: int = 8080,
    on_ready: Callable[[Sandbox], None] | None = None,
) -> None:
    """Serve a sandbox until `stop` is set, then close it (requests in flight get a short grace).

    `on_ready` is called once it listens (its `.url` is known). Raises ValueError for an address
    that is not loopback, OSError when it cannot listen there (e.g. the port is taken). Printing
    and signals are the caller's: `bulkmeet sandbox` does both."""
    async with await start_sandbox(settings, host=host, port=port) as sandbox:
        if on_ready is not None:
            on_ready(sandbox)
        await stop.wait()


class SandboxThread:
    """A sandbox on its own event loop in a background thread, for synchronous callers.

    `state` is mutated by that thread: read it once the traffic has stopped, or use the
    /_sandbox endpoints.
    """

    def __init__(
        self, settings: SandboxSettings = DEFAULT_SETTINGS, *, host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        loopback_host(host)  # fail here, in the caller's thread
        self.settings = settings
        self._host, self._port = host, port
        self._sandbox: Sandbox | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            raise RuntimeError("the sandbox thread is not running")
        return self._sandbox

    @property
    def url(self) -> str:
        return self.sandbox.url

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    def start(self) -> None:
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="bulkmeet-sandbox", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> SandboxThread:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the caller of start()
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await serve(self.settings, stop=self._stop, host=self._host, port=self._port,
                    on_ready=self._on_ready)

    def _on_ready(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._ready.set()

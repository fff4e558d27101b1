"""Ways to run a sandbox: on the caller's event loop (start_sandbox), on its own loop in a
background thread (SandboxThread), or until told to stop (serve, for `bulkmeet sandbox`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
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
        async with await start_sandbox(self.settings, host=self._host, port=self._port) as sandbox:
            self._sandbox = sandbox
            self._ready.set()
            await self._stop.wait()


def serve(
    settings: SandboxSettings = DEFAULT_SETTINGS, *, host: str = "127.0.0.1", port: int = 8080
) -> None:
    """Run a sandbox until SIGINT or SIGTERM; print its URL on one line to stderr."""
    with contextlib.suppress(KeyboardInterrupt):  # where signal handlers are unsupported
        asyncio.run(_serve(settings, host, port))


async def _serve(settings: SandboxSettings, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not main thread
            pass
    try:
        async with await start_sandbox(settings, host=host, port=port) as sandbox:
            print(f"bulkmeet sandbox listening on {sandbox.url}", file=sys.stderr, flush=True)
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)

"""The transport's edge: aiohttp's connection errors turned into outcomes, and a body read
with a bound."""

from __future__ import annotations

import errno
from urllib.parse import urlsplit

import aiohttp

from .outcomes import MAX_BODY, Lost, Retryable


def _where(url: str) -> str:
    """host:port of a URL, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or url
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port or (443 if parts.scheme == 'https' else 80)}"


def _cause(exc: BaseException) -> str:
    err = getattr(exc, "os_error", None) or exc
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return str(text)


def transport_failure(exc: BaseException, url: str) -> Retryable | Lost:
    """aiohttp's connection errors as an outcome with a plain message naming host:port and the
    cause (aiohttp's own text says `ssl:default` even for plain http)."""
    where = _where(url)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Retryable(None, f"cannot connect to {where}: the host name does not resolve "
                         f"(DNS: {_cause(exc)})", kind="dns")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return Retryable(None, f"cannot connect to {where}: TLS certificate not accepted "
                         f"({exc.certificate_error})", kind="tls")
    if isinstance(exc, aiohttp.ClientSSLError):
        return Retryable(None, f"cannot connect to {where}: TLS handshake failed "
                         f"({_cause(exc)})", kind="tls")
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError) or getattr(
                os_error, "errno", None) == errno.ECONNREFUSED:
            return Retryable(None, f"cannot connect to {where}: connection refused (nothing "
                             "listens there)", kind="refused")
        return Retryable(None, f"cannot connect to {where}: {_cause(exc)}", kind="connect")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Retryable(None, f"cannot connect to {where}: no connection within the timeout",
                         kind="connect")
    if isinstance(exc, TimeoutError):  # SocketTimeoutError, the total timeout
        return Lost(None, f"{where}: no answer within the request timeout", kind="timeout")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Lost(None, f"connection lost: {where} closed it before answering",
                    kind="disconnected")
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return Lost(None, f"connection lost: the connection to {where} broke before the answer "
                    f"was complete ({type(exc).__name__}: {_cause(exc)})", kind="reset")
    return Lost(None, f"request to {where} failed: {type(exc).__name__}: {exc}", kind="reset")


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int = MAX_BODY) -> bytes | None:
    """The body, or None when it is longer than `limit` (then at most `limit` + 1 bytes were
    read). aiohttp's resp.read() has no bound."""
    if resp.content_length is not None:
        if resp.content_length > limit:
            return None
        return await resp.read()  # the length is known and small: aiohttp reads that much
    buf = bytearray()
    while True:
        chunk = await resp.content.read(limit + 1 - len(buf))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            return None

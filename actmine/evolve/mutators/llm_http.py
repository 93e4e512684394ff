"""The LLM mutator's HTTP client: an `httpx` client whose calls end when actmine says, whatever the endpoint does.

httpx's `timeout` bounds each read, not the call: an endpoint that sends one byte a minute (or an
endless stream of headers) holds a call forever, and with it a proposal thread, the end of a search
and Ctrl-C. An endpoint is not trusted either to keep its answer small, nor to leave it uncompressed
(600 KB of gzip inflate to gigabytes in memory), nor to send us elsewhere with a redirect. So every
call made inside `call_limits(...)`:

- ends with `ReadTimeout` when its whole exchange (connect, request, headers, body) passes the
  deadline: each socket read waits at most until the deadline, in slices of `POLL_S`;
- ends with `ReadError` as soon as its `cancelled` event is set (the search is stopping), within
  `POLL_S`;
- ends with `ReadError` when the endpoint sends more than `max_bytes`;

and every call of the client asks for an uncompressed answer (`Accept-Encoding: identity`), refuses a
compressed one before a byte of it is inflated, and follows no redirect. The exceptions are httpx's
own, so the `openai` client reports them as it reports any timeout or connection error.

The limits live in a thread-local: the client is synchronous, so a call's every read happens in the
thread that made it, and concurrent calls on one connection pool keep their own limits.
"""

from __future__ import annotations

import importlib
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import openai

# the httpx that this openai speaks (httpx2 from openai 3, httpx before), and its httpcore
_HTTPX_NAME = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == "Client").__module__.split(".")[0]
httpx = importlib.import_module(_HTTPX_NAME)
httpcore = importlib.import_module(_HTTPX_NAME.replace("httpx", "httpcore"))

POLL_S = 0.25  # how soon a cancelled call notices
MAX_ANSWER_BYTES = 16 * 2**20  # an answer is cut at 200,000 characters anyway (`answer_text`)
#: begins the error of an answer that arrived but is refused (compressed, past MAX_ANSWER_BYTES): the
#: server misbehaved, which the mutator records as a server error and `llm check` explains
REFUSED_ANSWER = "actmine refuses the answer"


@dataclass
class CallLimits:
    """One call's limits: its deadline (`time.monotonic()`), its byte cap, the event that cancels it."""

    deadline: float
    max_bytes: int
    cancelled: threading.Event
    received: int = field(default=0)

    def remaining(self, what: str) -> float:
        """Seconds left, or the error that ends the call now."""
        if self.cancelled.is_set():
            raise httpcore.ReadError("the search is stopping")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout(f"no whole answer within the time limit ({what})")
        return left


_current = threading.local()


@contextmanager
def call_limits(timeout_s: float, cancelled: threading.Event, max_bytes: int | None = None) -> Iterator[CallLimits]:
    """Calls made by this thread inside the block end by `timeout_s` from now, on `cancelled`, or
    past `max_bytes` received (`MAX_ANSWER_BYTES` by default)."""
    limits = CallLimits(time.monotonic() + timeout_s, max_bytes or MAX_ANSWER_BYTES, cancelled)
    previous = getattr(_current, "limits", None)
    _current.limits = limits
    try:
        yield limits
    finally:
        _current.limits = previous


def _limits() -> CallLimits | None:
    return getattr(_current, "limits", None)


def _within(timeout: float | None, left: float) -> float:
    return left if timeout is None else min(timeout, left)


class _LimitedStream(httpcore.NetworkStream):
    """A socket stream whose reads and writes obey the calling thread's `CallLimits`."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        limits = _limits()
        if limits is None:
            return self._stream.read(max_bytes, timeout)
        waited_since = time.monotonic()
        while True:
            left = _within(timeout, limits.remaining("reading"))
            if timeout is not None and time.monotonic() - waited_since >= timeout:
                raise httpcore.ReadTimeout("no byte within the read timeout")
            try:
                data = self._stream.read(max_bytes, min(left, POLL_S))
            except httpcore.ReadTimeout:
                continue  # nothing yet: look at the deadline and the cancel event again
            limits.received += len(data)
            if limits.received > limits.max_bytes:
                raise httpcore.ReadError(f"{REFUSED_ANSWER}: the endpoint sent more than {limits.max_bytes} bytes")
            return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        limits = _limits()
        if limits is not None:
            timeout = _within(timeout, limits.remaining("sending the request"))
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        limits = _limits()
        if limits is not None:
            timeout = _within(timeout, limits.remaining("the TLS handshake"))
        return _LimitedStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _LimitedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, its connects and streams held to the calling thread's `CallLimits`."""

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, *args: Any, **kwargs: Any) -> Any:
        limits = _limits()
        if limits is not None:
            timeout = _within(timeout, limits.remaining("connecting"))
        return _LimitedStream(super().connect_tcp(host, port, timeout, *args, **kwargs))

    def connect_unix_socket(self, path: str, timeout: float | None = None, *args: Any, **kwargs: Any) -> Any:
        limits = _limits()
        if limits is not None:
            timeout = _within(timeout, limits.remaining("connecting"))
        return _LimitedStream(super().connect_unix_socket(path, timeout, *args, **kwargs))


class _IdentityOnly(httpx.BaseTransport):
    """Refuses a compressed answer before it is inflated (the client asked for `identity`)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def handle_request(self, request: Any) -> Any:
        response = self._transport.handle_request(request)
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise httpx.DecodingError(
                f"{REFUSED_ANSWER}: the endpoint compressed it ({encoding[:40]}) though actmine asks for none",
                request=request,
            )
        return response

    def close(self) -> None:
        self._transport.close()


def _limited(transport: Any) -> Any:
    # httpx builds its connection pools itself (`HTTPTransport._pool`, httpcore's `ConnectionPool`
    # or a proxy, which keep the backend they open sockets with); connections are opened lazily, so
    # swapping the backend here covers them all. tests/test_llm_http.py fails if this stops working.
    transport._pool._network_backend = _LimitedBackend()
    return _IdentityOnly(transport)


class LimitedClient(httpx.Client):
    """`httpx.Client` whose transports (direct and through proxies) obey `call_limits`."""

    def _init_transport(self, *args: Any, **kwargs: Any) -> Any:
        return _limited(super()._init_transport(*args, **kwargs))

    def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> Any:
        return _limited(super()._init_proxy_transport(*args, **kwargs))


def limited_client(timeout_s: float) -> Any:
    """The client for one model: per-read timeout `timeout_s`, no redirects, uncompressed answers."""
    return LimitedClient(timeout=timeout_s, follow_redirects=False, headers={"Accept-Encoding": "identity"})

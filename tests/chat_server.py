"""A real HTTP server on 127.0.0.1 that speaks OpenAI's chat-completions protocol with scripted answers.

Tests drive the LLM mutator through the official `openai` client against it. Each request pops the
next script entry (the last one repeats once the script is used up):

    "text"                                  a 200 answer with that content
    {"content": "...", "delay": 0.5}        answer after a delay (a slow model)
    {"status": 429, "retry_after": 0}       an error status (rate limit, 500, 401, ...)
    {"content": "...", "usage": False}      an answer without a usage block
    {"content": "...", "drip": 0.1}         the answer's bytes one at a time, that many seconds apart
    {"drip_headers": 0.1}                   a status line, then header bytes that never end
    {"raw": b"...", "status": 200, "headers": {...}}   exactly these bytes (an HTML page, gzip, a redirect)

Every request is kept (`requests`: path, headers, JSON body) for the tests to inspect.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    """A client that gave up mid-answer (a test's timeout) is expected here, not an error to print."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipeError, ConnectionResetError, ...
            return
        super().handle_error(request, client_address)


class ChatServer:
    def __init__(self, script: list[Any] | None = None, prompt_tokens: int = 100, completion_tokens: int = 50):
        self.script = list(script or ["```python\ndef activation_function(x):\n    return torch.relu(x)\n```"])
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._count = 0
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "ChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self) -> Any:
        with self._lock:
            entry = self.script[min(self._count, len(self.script) - 1)]
            self._count += 1
            return entry

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest's output clean
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _send_bytes(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _drip(self, data: bytes, pause_s: float, head_bytes: int = 0) -> None:
                """`data` (a whole response) with `pause_s` between its bytes after the first `head_bytes`."""
                try:
                    self.wfile.write(data[:head_bytes])
                    for i in range(head_bytes, len(data)):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(pause_s)
                except OSError:  # the client gave up: that is the point
                    pass
                self.close_connection = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                    )
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                entry = server._next()
                if isinstance(entry, str):
                    entry = {"content": entry}
                if entry.get("delay"):
                    time.sleep(entry["delay"])
                if "raw" in entry:
                    self._send_bytes(entry.get("status", 200), entry["raw"], entry.get("headers", {}))
                    return
                if "drip_headers" in entry:
                    self._drip(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 10**6, entry["drip_headers"])
                    return
                status = entry.get("status", 200)
                if status != 200:
                    headers = {"retry-after": str(entry["retry_after"])} if "retry_after" in entry else {}
                    # x-should-retry off: the mutator, not the client, decides about retries
                    headers["x-should-retry"] = "false"
                    self._send(
                        status,
                        {
                            "error": {
                                "message": entry.get("message", f"scripted {status}"),
                                "type": "scripted",
                                "code": status,
                            }
                        },
                        headers,
                    )
                    return
                answer = {
                    "id": f"chatcmpl-{len(server.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "scripted"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": entry.get("content", "")},
                        }
                    ],
                }
                if entry.get("usage", True):
                    answer["usage"] = {
                        "prompt_tokens": server.prompt_tokens,
                        "completion_tokens": server.completion_tokens,
                        "total_tokens": server.prompt_tokens + server.completion_tokens,
                    }
                if entry.get("drip"):
                    data = json.dumps(answer).encode()
                    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                    self._drip(head.encode() + data, entry["drip"], head_bytes=len(head))
                    return
                self._send(200, answer)

        return Handler

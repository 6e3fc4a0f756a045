"""An HTTP proxy on 127.0.0.1 in front of a real `mlflow server` that breaks one chosen
request, once. The faults (`FAULTS`): "kill before" kills the server before it sees the request;
"kill after" lets the server apply it and kills it before its reply leaves (a server that dies
mid-call); "drop reply" lets the server apply it and drops the reply, the server living on (a
reply lost on the way). Everything else is relayed as it is; while the server is down the proxy
drops the connection, as a dead server would.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.mlflow_server import MlflowServer

Match = Callable[[str, bytes], bool]  # (request path, request body) -> is this the request
FAULTS = ("kill before", "kill after", "drop reply")
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class FaultProxy:
    def __init__(self, server: MlflowServer, match: Match, fault: str) -> None:
        assert fault in FAULTS, fault
        self.server, self.match, self.fault = server, match, fault
        self.fired = threading.Event()
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def _fires(self, path: str, body: bytes) -> bool:
        with self._lock:  # the fault happens once, at the first matching request
            if self.fired.is_set() or not self.match(path, body):
                return False
            self.fired.set()
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Relay(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fires = proxy._fires(self.path, body)
                if fires and proxy.fault == "kill before":
                    proxy.server.kill()
                    return  # no reply: the connection closes
                try:
                    status, headers, reply = proxy._forward(
                        self.command, self.path, body, dict(self.headers)
                    )
                except OSError:
                    return  # the server is down
                if fires:  # applied by the server; the reply never leaves
                    if proxy.fault == "kill after":
                        proxy.server.kill()
                    return
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = relay

        return Relay

    def _forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            headers = {
                k: v
                for k, v in headers.items()
                if k.lower() not in HOP_HEADERS and k.lower() != "host"
            }
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

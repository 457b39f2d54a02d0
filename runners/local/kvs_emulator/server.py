"""The HTTP server: a request handler that checks auth, hands the body to the service operation for
its path and writes the answer in the wire format, and :class:`KvsEmulator`, the server's life cycle."""
from __future__ import annotations

import email.utils
import logging
import socket
import struct
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from runners.local.kvs_emulator.faults import Faults
from runners.local.kvs_emulator.service import KvsService, MediaResponse
from runners.local.kvs_emulator.wire import (
    LAST_CHUNK,
    ApiError,
    JsonAnswer,
    access_denied,
    error_answer,
    http_chunk,
    json_answer,
    media_headers,
    parse_body,
)
from runners.local.kvs_store import KvsStore

# the package's name, as the logger was called before the package was split into modules
log = logging.getLogger(__package__)

SHUTDOWN_POLL_SECONDS = 0.05  # how soon stop() takes effect; the stdlib default of 0.5 s slows tests


class KvsRequestHandler(BaseHTTPRequestHandler):
    """One request: auth check, JSON in, JSON or a chunked media stream out, errors as AWS sends them."""

    protocol_version = "HTTP/1.1"  # keep-alive like AWS endpoints, and needed for chunked bodies
    server_version = "voicelake-kvs-emulator"
    server: _HttpServer

    def date_time_string(self, timestamp=None) -> str:
        """The Date header, on the emulator's clock: as AWS does, it says when the service answered,
        which is what a client judges retention against (and the clock may be frozen)."""
        return email.utils.formatdate(self.server.service.clock_ms() / 1000, usegmt=True)

    def do_POST(self) -> None:
        request_id = str(uuid.uuid4())
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if "Authorization" not in self.headers:
                raise ApiError("NotAuthorizedException", 401, "Missing Authentication Token")
            operation = self.server.service.operation(self.path)
            if self.server.service.injector.faults.deny_all:
                raise access_denied(self.path)
            answer = operation(parse_body(raw), self.headers.get("Host", self.server.address))
        except ApiError as error:
            self.send_error_json(error, request_id)
            return
        except Exception:
            log.exception("%s %s failed", self.command, self.path)
            self.send_error_json(ApiError("InternalFailure", 500, "Internal failure"), request_id)
            return
        if isinstance(answer, MediaResponse):
            self.send_media(answer, request_id)
        else:
            self.send_json(json_answer(200, answer, request_id))

    def send_json(self, answer: JsonAnswer) -> None:
        self.send_response(answer.status)
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def send_error_json(self, error: ApiError, request_id: str) -> None:
        log.debug("%s %s -> %s %s", self.command, self.path, error.status, error.code)
        self.send_json(error_answer(error, request_id))

    def send_media(self, media: MediaResponse, request_id: str) -> None:
        """Write chunk by chunk as HTTP chunks; a stream fault stops inside its chosen chunk."""
        self.send_response(200)
        for key, value in media_headers(request_id).items():
            self.send_header(key, value)
        self.end_headers()
        fault = media.fault
        try:
            for index, chunk in enumerate(media.chunks):
                if fault is not None and index == fault.chunk_index:
                    cut = fault.cut(chunk)
                    if cut:
                        self.wfile.write(http_chunk(chunk[:cut]))
                    if fault.mode == "reset":
                        self.reset_connection()
                        return
                    break
                self.wfile.write(http_chunk(chunk))
            self.wfile.write(LAST_CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing left to tell it

    def reset_connection(self) -> None:
        """Close with SO_LINGER 0 so the kernel sends RST instead of FIN: an abrupt reset mid-body."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def log_message(self, format: str, *args) -> None:
        """Per-request lines go to DEBUG, not stderr; they hold the request line, never headers."""
        log.debug("%s - %s", self.address_string(), format % args)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: KvsService):
        super().__init__(address, KvsRequestHandler)
        self.service = service
        self.address = f"{self.server_address[0]}:{self.server_address[1]}"


class KvsEmulator:
    """A KVS endpoint bound to ``host:port`` (port 0 picks a free one) serving the store at ``store_dir``.

    Use :func:`start_emulator` (or ``with KvsEmulator(...) as emulator``) for a background server,
    or :meth:`serve_forever` to serve in the calling thread.  ``tps_limit`` None or 0 disables
    throttling; ``now_ms`` None follows real time, and the attribute may be changed while running.
    """

    def __init__(
        self,
        store_dir: str,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults = Faults(),
        now_ms: int | None = None,
        tps_limit: int | None = 5,
    ):
        self.service = KvsService(KvsStore(store_dir), faults, now_ms, tps_limit)
        self._server = _HttpServer((host, port), self.service)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._server.address}"

    @property
    def now_ms(self) -> int | None:
        return self.service.now_ms

    @now_ms.setter
    def now_ms(self, value: int | None) -> None:
        self.service.now_ms = value

    def start(self) -> KvsEmulator:
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"kvs-emulator:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> KvsEmulator:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_emulator(store_dir: str, **settings) -> KvsEmulator:
    """Serve ``store_dir`` from a daemon thread (settings as for :class:`KvsEmulator`);
    ``.url`` is boto3's endpoint_url, ``.stop()`` ends it."""
    return KvsEmulator(store_dir, **settings).start()

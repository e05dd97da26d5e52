"""Run the local server: in-process on a free loopback port, or in the foreground (`migrate serve`).

`running_server(options, db_path)` is what `migrate run --target local` and the tests use: it
starts uvicorn (h11) in a thread, waits until it accepts connections, yields the base URL to give
the `openai` SDK (`http://127.0.0.1:PORT/v1`) and shuts everything down on exit.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from migrate.server.app import LocalConversationsServer
from migrate.server.azure import asgi_app
from migrate.server.options import ServerOptions
from migrate.server.store import ConversationStore

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT = 10.0
SHUTDOWN_GRACE_SECONDS = 2


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets of that protocol,
    # and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


def _base_url(sock: socket.socket, options: ServerOptions) -> str:
    """The OpenAI flavour's base URL (`.../v1`), or the Azure flavour's endpoint (the root)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    root = f"http://{shown}:{port}"
    return root if options.flavour == "azure" else f"{root}/v1"


def _uvicorn_config(app: LocalConversationsServer, *, log_config: bool) -> uvicorn.Config:
    options = app.options
    return uvicorn.Config(
        asgi_app(app),
        http="h11",
        loop="asyncio",
        lifespan="off",
        access_log=options.access_log,
        proxy_headers=False,
        log_config=uvicorn.config.LOGGING_CONFIG if log_config else None,
        log_level="info" if options.access_log else "warning",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )


class EmbeddedServer:
    """The local server in a background thread of this process."""

    def __init__(
        self,
        options: ServerOptions | None = None,
        db_path: Path | str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.options = options or ServerOptions()
        self._db_path = db_path
        self._host = host
        self._port = port
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._store: ConversationStore | None = None
        self._app: LocalConversationsServer | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.base_url = ""

    @property
    def app(self) -> LocalConversationsServer:
        """The running app (stats, fault injector, store)."""
        if self._app is None:
            raise RuntimeError("the server is not running")
        return self._app

    def start(self) -> str:
        """Start serving and return the base URL once connections are accepted."""
        if self._db_path is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="migrate-server-")
            db_path: Path | str = Path(self._tempdir.name) / "conversations.db"
        else:
            db_path = self._db_path
        try:
            self._store = ConversationStore.from_path(db_path)
            self._app = LocalConversationsServer(self.options, self._store)
            self._socket = _bind(self._host, self._port)
            self._server = uvicorn.Server(_uvicorn_config(self._app, log_config=False))
            self._thread = threading.Thread(
                target=self._server.run,
                kwargs={"sockets": [self._socket]},
                name="migrate-local-server",
                daemon=True,
            )
            self._thread.start()
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not self._server.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the local server did not start on {self._host}")
                time.sleep(0.005)
        except BaseException:
            self.stop()
            raise
        self.base_url = _base_url(self._socket, self.options)
        logger.info("local Conversations server at %s (db %s)", self.base_url, db_path)
        return self.base_url

    def stop(self) -> None:
        """Shut down and release the port, threads, database and any temporary directory."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=SHUTDOWN_GRACE_SECONDS + 5)
        if self._app is not None:
            self._app.close()
        if self._store is not None:
            self._store.close()
        if self._socket is not None:
            self._socket.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()
        self._server = self._thread = self._socket = self._tempdir = None
        self._store = None
        self._app = None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextmanager
def running_server(
    options: ServerOptions | None = None,
    db_path: Path | str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[str]:
    """Run the local server for the duration of the block; yields its base URL (with `/v1`).

    With no `db_path`, the conversations live in a temporary file deleted on exit.
    """
    with EmbeddedServer(options, db_path, host=host, port=port) as server:
        yield server.base_url


def serve(
    options: ServerOptions,
    db_path: Path | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C); `on_ready` gets the base URL."""
    store = ConversationStore.from_path(db_path)
    app = LocalConversationsServer(options, store)
    try:
        sock = _bind(host, port)
        try:
            if on_ready is not None:
                on_ready(_base_url(sock, options))
            # uvicorn shuts down gracefully on Ctrl-C, then re-raises the signal it captured.
            with contextlib.suppress(KeyboardInterrupt):
                uvicorn.Server(_uvicorn_config(app, log_config=True)).run(sockets=[sock])
        finally:
            sock.close()
    finally:
        app.close()
        store.close()

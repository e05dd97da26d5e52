"""The local Conversations API server: a SQLite-backed rehearsal target bound to loopback.

`running_server(options, db_path)` runs it in-process (the embedded target of `migrate run` and of
the tests); `migrate serve` runs it in the foreground. `ServerOptions` holds the rehearsal
switches: latency, a requests-per-minute limit and injected faults.
"""

from migrate.server.embedded import EmbeddedServer, running_server
from migrate.server.options import FaultKind, FaultSettings, ServerOptions

__all__ = ["EmbeddedServer", "FaultKind", "FaultSettings", "ServerOptions", "running_server"]

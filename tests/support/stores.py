"""Empty MLflow SQLite stores for tests, each a copy of one store that MLflow created once per
test session: creating a store costs seconds (MLflow runs its schema migrations), copying the
file costs nothing, and a copy is the same store MLflow would make.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DB_FILE = "mlflow.db"


def sqlite_store(folder: Path, factory: pytest.TempPathFactory) -> str:
    """The tracking URI of a new, empty SQLite store in ``folder``."""
    template = factory.getbasetemp() / "mlflow-template" / DB_FILE
    if not template.is_file():
        from mlflow import MlflowClient

        template.parent.mkdir(parents=True, exist_ok=True)
        MlflowClient(f"sqlite:///{template}").search_experiments()  # creates and migrates
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, folder / DB_FILE)
    return f"sqlite:///{folder / DB_FILE}"

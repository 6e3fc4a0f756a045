"""One rule picks the MLflow store for `run`, `report` and `ui`."""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.tracking.store import choose_tracking_uri


def test_flag_then_spec_then_environment_then_local_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert choose_tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert choose_tracking_uri(None) == "http://tracking:5000"
    assert choose_tracking_uri(None, "sqlite:///runs/m.db") == (
        f"sqlite:///{tmp_path / 'runs' / 'm.db'}"
    )
    assert choose_tracking_uri("sqlite:////abs/x.db", "sqlite:///runs/m.db") == (
        "sqlite:////abs/x.db"
    )
    assert choose_tracking_uri("store") == str(tmp_path / "store")  # a bare folder

"""Running sweeps: from a spec to Ray Tune trials, their files and their MLflow runs.

One room (sub-package) per job: `spec/` (what a sweep is; no torch, Ray or MLflow),
`storage/` (where a sweep's files live), `trial/` (what runs inside one Ray trial),
`tracking/` (the journal and MLflow), `sweep/` (driving a sweep), `cli/` (the `selab`
command), and `compat.py` (the private Ray and MLflow calls, in one place).
"""

"""Driving a sweep: run and resume (`run.py`), the driver (`driver.py`), the checks before
anything starts (`preflight.py`), search and scheduling (`search.py`, `portable_sampler.py`,
`race.py`), the progress table (`progress.py`), and reaching a Ray cluster (`cluster.py`)."""

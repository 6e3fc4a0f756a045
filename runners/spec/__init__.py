"""What a sweep is: the spec and its sections, the points it expands to, each trial's settings.

Pure Python, pydantic and YAML: nothing here imports torch, Ray or MLflow (tests/test_spec.py
checks it), so reading and checking a spec is cheap anywhere.
"""

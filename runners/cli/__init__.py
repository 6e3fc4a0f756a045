"""The `selab` command line: `main.py` and one module per sub-command in `commands/`."""

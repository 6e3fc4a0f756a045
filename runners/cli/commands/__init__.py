"""One module per `selab` sub-command, each with `register(subparsers)` (runners.cli.main)."""

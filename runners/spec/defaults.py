"""The spec's defaults that the command line also names (in `--help`): a module of constants,
so that `selab --help` does not import the spec's models to print them."""

# Where sweeps are stored unless the spec's `storage` or --storage says otherwise: the default
# of `selab run`, `resume` and `sync` alike.
DEFAULT_STORAGE = "./selab_runs"

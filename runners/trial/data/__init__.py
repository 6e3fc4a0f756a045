"""The datasets a trial can train on: each module reads one kind and hands back splits; `load`
holds the two entry points (inspect_dataset, load_splits)."""

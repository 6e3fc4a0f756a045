"""The datasets a trial can train on: each module reads one kind and hands back splits."""

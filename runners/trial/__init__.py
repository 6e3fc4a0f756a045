"""What runs inside one Ray trial: the trainable, the training loop, the memory settings of
trial workers, and `data/` (the datasets and the entry points that load them)."""

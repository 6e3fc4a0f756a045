"""MLflow and the journal: which tracking store (`store.py`), what a sweep writes there
(`schema.py`), the journal (`journal.py`), the Tune callback that writes it
(`journal_logger.py`), its copy in remote storage (`journal_mirror.py`), the background writer
that sends it to MLflow (`mlflow_writer.py`), and `selab sync` (`sync.py`)."""

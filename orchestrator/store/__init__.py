"""What is kept on disk: the queue CSV (byte-preserving merge-by-ID), the config, the
run record and the experiment/model registry (SQLite), the state dir's paths."""

__all__: list[str] = []

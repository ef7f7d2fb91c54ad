"""Job-side libraries: the torch ``Trainer`` and its add-ons, the HF Seq2Seq trainer,
the YOLO trainer and labeller. They run inside a job's process and import only the
job-side API (``orchestrator.api``) and shared infrastructure (``orchestrator.infra``),
never the driver."""

__all__: list[str] = []

"""Kind ``yolo``: ultralytics training on the row's GPUs (``trainers.yolo train``);
``on_oom = halve_batch`` divides the per-GPU batch."""

from orchestrator.kinds._builtin import BuiltinKind

KIND = BuiltinKind("yolo", "yolo", verb="train", knows_batch=True,
                  requires=("torch", "ultralytics"), extra="yolo")

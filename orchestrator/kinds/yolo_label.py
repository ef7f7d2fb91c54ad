"""Kind ``yolo_label``: label a folder of images with a trained model (its
``PretrainedModelId``), writing YOLO label files and ``classes.txt``."""

from orchestrator.kinds._builtin import BuiltinKind

KIND = BuiltinKind("yolo_label", "yolo", verb="label", loader="load_label",
                  requires=("torch", "ultralytics"), extra="yolo")

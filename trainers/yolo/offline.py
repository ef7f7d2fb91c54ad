"""Keep ultralytics off the network and out of shared folders, for one run.

Must run before ``import ultralytics`` (its settings, online probe and config dir are
read at import). What reaches the network otherwise (ultralytics 8.4.190):

* ``utils.is_online()`` resolves one.one.one.one / dns.google at import unless
  ``YOLO_OFFLINE`` is true;
* ``checks.check_font()`` downloads Arial.ttf / Arial.Unicode.ttf unless found in
  ``$YOLO_CONFIG_DIR/Ultralytics/`` (the dataset check and the plots call it);
* ``check_requirements`` pip-installs missing packages unless ``YOLO_AUTOINSTALL`` is false;
* settings ``sync`` (events, Sentry) and the integrations (clearml, comet, dvc, mlflow,
  raytune, tensorboard, wandb) read from ``settings.json`` in the same folder;
* the fp16 AMP check downloads yolo26n.pt (handled by ``device.choose_amp``).

Everything goes into ``<root>/Ultralytics``: settings, fonts, the DDP launcher's temp
scripts, datasets/weights/runs dirs. Two runs with two roots share nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

__all__ = ["prepare", "FONTS", "settings"]

FONTS = ("Arial.ttf", "Arial.Unicode.ttf")
SETTINGS_VERSION = "0.0.8"   # ultralytics 8.4.190's SettingsManager schema


def settings(root: Path, integrations: tuple[str, ...] = ()) -> dict:
    """The settings.json for a private config dir: no sync, only the asked-for integrations."""
    base = root / "Ultralytics"
    return {
        "settings_version": SETTINGS_VERSION,
        "datasets_dir": str(base / "datasets"), "weights_dir": str(base / "weights"),
        "runs_dir": str(base / "runs"), "uuid": "offline", "sync": False, "api_key": "",
        "openai_api_key": "",
        **{name: name in integrations for name in
           ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")},
        "vscode_msg": False, "openvino_msg": False,
    }


def _font_source() -> Path | None:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    font = Path(next(iter(spec.submodule_search_locations))) / "mpl-data/fonts/ttf/DejaVuSans.ttf"
    return font if font.is_file() else None


def prepare(root: str | Path, integrations: tuple[str, ...] = ()) -> Path:
    """Point ultralytics at ``root`` (created) and switch its network use off; returns
    the ``Ultralytics`` settings folder."""
    if "ultralytics" in sys.modules:
        print("note: ultralytics was imported before its offline setup; its settings may be "
              "shared", file=sys.stderr)
    root = Path(root).resolve()
    base = root / "Ultralytics"
    base.mkdir(parents=True, exist_ok=True)
    os.environ.update({"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0",
                       "YOLO_CONFIG_DIR": str(root)})
    (base / "settings.json").write_text(json.dumps(settings(root, integrations), indent=2),
                                        encoding="utf-8")
    source = _font_source()
    for name in FONTS:
        if source is not None and not (base / name).exists():
            shutil.copyfile(source, base / name)
    return base

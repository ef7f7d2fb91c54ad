"""What keeping run outputs in object storage costs per attempt (printed, not asserted).

Against a local S3-compatible server (moto's, on 127.0.0.1, the one the tests use), for
weights of 10 and 200 MB, a single file and a folder of 20 files:

- upload: what a runner does when an attempt ends (``orchestrator.infra.storage.upload``);
- fetch: what a child's node does before the child starts (``orchestrator.infra.storage.fetch``);
- copy: ``shutil.copy`` of the same bytes on local disk, the shared-filesystem baseline.

The server keeps objects in this process's memory, so the figures are the cost of our
path (pyarrow's S3 client, multipart upload, the atomic rename) over loopback, not the
bandwidth of a real bucket: there, transfer time is size / network throughput.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.infra import storage  # noqa: E402
from tests.s3_server import S3Server  # noqa: E402


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def case(s3: S3Server, work: Path, label: str, make) -> None:
    base = s3.bucket_uri()
    source = make(work / label)
    size = sum(p.stat().st_size for p in ([source] if source.is_file() else source.rglob("*"))
               if p.is_file()) / 2 ** 20
    uri = storage.join(base, "row", "attempt-1", source.name)
    up = timed(lambda: storage.upload(source, uri))
    down = timed(lambda: storage.fetch(uri, work / f"{label}-fetched"))
    target = work / f"{label}-copy"
    copy = timed(lambda: shutil.copytree(source, target) if source.is_dir()
                 else shutil.copy(source, target))
    print(f"{label:<22} {size:7.0f} MB  upload {up:6.2f} s ({size / up:6.0f} MB/s)  "
          f"fetch {down:6.2f} s ({size / down:6.0f} MB/s)  local copy {copy:5.2f} s")


def one_file(mb: int):
    def make(folder: Path) -> Path:
        folder.mkdir()
        path = folder / "model.pt"
        path.write_bytes(os.urandom(mb * 2 ** 20))
        return path
    return make


def folder_of(files: int, mb_each: int):
    def make(folder: Path) -> Path:
        model = folder / "best_model"
        model.mkdir(parents=True)
        for i in range(files):
            (model / f"shard-{i:02d}.safetensors").write_bytes(os.urandom(mb_each * 2 ** 20))
        return model
    return make


def main() -> None:
    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    print("storage (local S3-compatible server on loopback; see the docstring):")
    with S3Server() as s3, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        case(s3, work, "file 10 MB", one_file(10))
        case(s3, work, "file 200 MB", one_file(200))
        case(s3, work, "folder 20 x 5 MB", folder_of(20, 5))


if __name__ == "__main__":
    main()

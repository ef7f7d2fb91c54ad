"""A real S3-compatible HTTP server on 127.0.0.1 for the storage tests (moto's server).

It speaks the S3 REST protocol to pyarrow, Ray Train and our runners exactly as AWS S3
or MinIO would; only the bucket contents live in this test process's memory. The
credentials are test values; pyarrow reads them from the environment, as on a cluster.
"""

from __future__ import annotations

import logging
import os
import uuid

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "orch-test-key", "AWS_SECRET_ACCESS_KEY": "orch-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


class S3Server:
    """``with S3Server() as s3: uri = s3.bucket_uri()``, a fresh bucket per call."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def __enter__(self) -> S3Server:
        self._saved = {k: os.environ.get(k) for k in CREDENTIALS}
        os.environ.update(CREDENTIALS)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def bucket_uri(self, prefix: str = "runs") -> str:
        """A new empty bucket; the storage URI of ``prefix`` in it."""
        import pyarrow.fs as pafs

        bucket = f"orch-{uuid.uuid4().hex[:12]}"
        fs = pafs.S3FileSystem(endpoint_override=self.endpoint, allow_bucket_creation=True)
        fs.create_dir(bucket)
        return f"s3://{bucket}/{prefix}?endpoint_override={self.endpoint}"

    def files(self, uri: str) -> dict[str, bytes]:
        """Every object under ``uri``, by its path relative to it."""
        import pyarrow.fs as pafs

        fs, root = pafs.FileSystem.from_uri(uri)
        found = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        out = {}
        for info in found:
            if info.type == pafs.FileType.File:
                with fs.open_input_stream(info.path) as f:
                    out[info.path[len(root) + 1:]] = f.read()
        return out

"""Run outputs kept at a URI (``s3://``, ``gs://``, …) through pyarrow filesystems.

On a cluster without a shared filesystem the queue's ``storage`` setting names a URI:
Ray Train and Ray Tune keep their checkpoints there (it is their ``storage_path``), a
runner uploads each attempt's weights and log there, and a row whose parent's
``WeightFile`` is such a URI gets a copy downloaded onto its own node first.

A storage URI may carry pyarrow's options in its query (``?endpoint_override=…&region=…``
for an S3-compatible server) but never credentials: the URI is written into job scripts
and Ray Train's run config, which the Ray dashboard shows. Credentials come from the
environment or the node's role, as for any pyarrow/boto program. URIs written to the CSV
and the registry are ``public`` (no query); ``with_options`` puts the storage's query back.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from orchestrator.infra.errors import OrchestratorError

__all__ = ["StorageError", "is_uri", "check", "probe", "join", "public", "with_options",
           "basename", "upload", "fetch", "read_text", "write_text", "read_bytes",
           "write_bytes", "local_copy", "STORAGE_ENV"]

#: The queue's storage URI (with its options), as a job and its Ray Train workers see it.
STORAGE_ENV = "ORCH_STORAGE"
#: Bytes per read/write of a transfer. pyarrow's default (1 MiB) makes one ranged GET per
#: MiB: fetching 200 MB took 26 s against a local S3 server, 1.5 s with 32 MiB.
_CHUNK = 32 * 2 ** 20

_SECRET_KEYS = {"access_key", "secret_key", "session_token", "aws_access_key_id",
                "aws_secret_access_key", "aws_session_token", "credentials", "token",
                "password", "sas_token", "account_key", "client_secret"}
_CREDENTIALS_FIX = ("put credentials in the environment (AWS_ACCESS_KEY_ID/"
                    "AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, …) or the nodes' "
                    "cloud role, never in the URI: it is written into job scripts and shown "
                    "in the Ray dashboard")


class StorageError(OrchestratorError, ValueError):
    """A storage URI that cannot be used, or a transfer that failed (the message says why)."""


def is_uri(text: str | os.PathLike | None) -> bool:
    """``scheme://…`` (``s3://b/p``, ``gs://b/p``, ``file:///p``), not a filesystem path."""
    if not text or not isinstance(text, str) or "://" not in text:
        return False
    return len(urlsplit(text).scheme) > 1


def public(uri: str) -> str:
    """``uri`` without its query: what the CSV, the registry and logs show."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def join(uri: str, *names: str) -> str:
    """``uri`` with ``names`` appended to its path (its query kept)."""
    parts = urlsplit(uri)
    path = str(PurePosixPath(parts.path or "/", *names))
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def basename(uri: str) -> str:
    return PurePosixPath(urlsplit(uri).path).name


def with_options(uri: str, storage: str | None) -> str:
    """``uri`` with ``storage``'s query when both name the same bucket and ``uri`` has none
    of its own: a public URI from the CSV, made usable with the queue's endpoint."""
    if not storage or not is_uri(storage):
        return uri
    mine, theirs = urlsplit(uri), urlsplit(storage)
    if mine.query or (mine.scheme, mine.netloc) != (theirs.scheme, theirs.netloc):
        return uri
    return urlunsplit((mine.scheme, mine.netloc, mine.path, theirs.query, ""))


def check(uri: str, what: str = "storage") -> str:
    """``uri`` when it is well formed and carries no credentials; ``StorageError`` saying
    why not. Touches no network (``probe`` does)."""
    parts = urlsplit(uri)
    secrets = sorted({k for k, _ in parse_qsl(parts.query)} & _SECRET_KEYS)
    if secrets:
        raise StorageError(f"{what} {public(uri)}: the URI carries {', '.join(secrets)} — "
                           f"{_CREDENTIALS_FIX}")
    if parts.scheme != "file" and not parts.netloc:
        raise StorageError(f"{what} {uri}: no bucket — write {parts.scheme}://BUCKET/PREFIX")
    return uri


def probe(uri: str, what: str = "storage") -> None:
    """Write and delete a small object under ``uri``: wrong credentials, a missing bucket or
    an unreachable endpoint fail here, before any row runs."""
    fs, path = _filesystem(check(uri, what))
    key = f"{path.rstrip('/')}/.orchestrator-probe-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open_output_stream(key) as out:
            out.write(b"ok")
        fs.delete_file(key)
    except Exception as e:  # noqa: BLE001 - pyarrow raises OSError and friends
        raise StorageError(f"{what} {public(uri)}: cannot write there ({_one_line(e)}) — check "
                           "that the bucket exists, the endpoint is reachable and the "
                           "credentials in the environment may write to it") from None


def upload(local: str | Path, uri: str) -> str:
    """Copy a file or a folder to ``uri``; the public URI of the copy."""
    import pyarrow.fs as pafs

    local = Path(local)
    fs, path = _filesystem(uri)
    if not local.exists():
        raise StorageError(f"nothing to upload at {local}")
    try:
        pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=fs, chunk_size=_CHUNK)
    except Exception as e:  # noqa: BLE001
        raise StorageError(f"uploading {local} to {public(uri)} failed: {_one_line(e)}") from None
    return public(uri)


def fetch(uri: str, dest_dir: str | Path) -> Path:
    """Download the file or folder at ``uri`` into ``dest_dir`` (keeping its name); the
    local path. A copy already there is reused (a retried attempt fetches nothing)."""
    import pyarrow.fs as pafs

    fs, path = _filesystem(uri)
    dest_dir = Path(dest_dir)
    target = dest_dir / (basename(uri) or "weights")
    if target.exists():
        return target
    try:
        info = fs.get_file_info(path)
    except Exception as e:  # noqa: BLE001
        raise StorageError(f"cannot read {public(uri)}: {_one_line(e)}") from None
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"{public(uri)}: no such file or folder in storage")
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = dest_dir / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
    if info.type == pafs.FileType.Directory:
        partial.mkdir()   # copy_files fills a folder but does not make it
    try:
        pafs.copy_files(path, str(partial), source_filesystem=fs,
                        destination_filesystem=pafs.LocalFileSystem(), chunk_size=_CHUNK)
        os.replace(partial, target)   # a half-downloaded copy is never taken for a whole one
    except Exception as e:  # noqa: BLE001
        raise StorageError(f"downloading {public(uri)} failed: {_one_line(e)}") from None
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        elif partial.exists():
            partial.unlink()
    return target


def read_text(uri: str) -> str:
    """The text of the object at ``uri`` (a log)."""
    return read_bytes(uri).decode("utf-8", "replace")


def read_bytes(uri: str) -> bytes:
    """The object at ``uri``."""
    fs, path = _filesystem(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise StorageError(f"{public(uri)}: no such file in storage") from None
    except Exception as e:  # noqa: BLE001
        raise StorageError(f"cannot read {public(uri)}: {_one_line(e)}") from None


def write_text(uri: str, text: str) -> str:
    """Write ``text`` as the object at ``uri``; its public URI."""
    return write_bytes(uri, text.encode("utf-8"))


def write_bytes(uri: str, data: bytes) -> str:
    """Write ``data`` as the object at ``uri``; its public URI."""
    fs, path = _filesystem(uri)
    try:
        with fs.open_output_stream(path) as out:
            out.write(data)
    except Exception as e:  # noqa: BLE001
        raise StorageError(f"writing {public(uri)} failed: {_one_line(e)}") from None
    return public(uri)


def local_copy(path: str, dest_dir: str | Path | None = None) -> str:
    """``path`` itself when it is a filesystem path; a URI is fetched (with the queue's
    storage options from ``$ORCH_STORAGE``) into ``dest_dir``, by default a cache under
    the temp dir keyed by the URI. What a Ray Train worker calls on its parent's weights:
    it may run on a node that has never seen them."""
    if not is_uri(path):
        return path
    uri = with_options(path, os.environ.get(STORAGE_ENV))
    if dest_dir is None:
        digest = hashlib.sha1(public(uri).encode()).hexdigest()[:16]
        dest_dir = Path(tempfile.gettempdir()) / "orchestrator-fetch" / digest
    return str(fetch(uri, dest_dir))


@functools.lru_cache(maxsize=32)
def _filesystem(uri: str):
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as e:  # noqa: BLE001 - ArrowInvalid, ValueError, OSError
        raise StorageError(f"storage {public(uri)}: pyarrow cannot open it ({_one_line(e)}) — "
                           "use s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or a shared "
                           "filesystem path") from None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] or type(error).__name__

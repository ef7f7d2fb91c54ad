"""What code a row was queued with: a snapshot of the folder its command runs in, taken
when the driver first reads the row (not when it starts), kept content-addressed in the
state dir and pointed at by each of its attempts.

In a git work tree: the HEAD commit, the diff of tracked files against it
(``git diff HEAD --binary``) and the untracked files git does not ignore. Elsewhere: the
files under ``snapshot_globs``. Both add the files the row names (its ``Config``, a
``--config X`` in its command). Left out, and said in ``skipped``: files over the size cap,
secrets (``.env``, keys, credentials), symlinks that leave the tree, the state dir and the
queue file itself (the driver writes it). A snapshot's id is the hash of what it holds,
so rows queued from the same code share one; blobs are shared across snapshots.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from stat import S_ISREG

from orchestrator.infra.errors import OrchestratorError

__all__ = ["Snapshot", "SnapshotStore", "SnapshotError", "Scan", "scan", "take", "named_files",
           "named_words", "frozen_path", "import_dirs", "kept_copy", "OUTSIDE",
           "code_diff", "materialize", "publish", "pack_tree", "fetch_snapshot",
           "SECRET_PATTERNS"]

#: Files a snapshot never holds, whatever git says of them.
SECRET_PATTERNS = (".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*",
                   "id_ed25519*", "id_ecdsa*", ".netrc", "*secret*", "*credential*",
                   "*.kdbx", ".pypirc", ".git-credentials")
MAX_FILE_BYTES = 1 << 20          # a file larger than this is named, not kept
MAX_TOTAL_BYTES = 32 << 20        # what one snapshot keeps at most
MAX_WALK_FILES = 50_000           # files a folder without git is looked through at most
MAX_TREE_BYTES = 256 << 20        # a commit's files packaged for nodes without the checkout
_SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__",
              ".mypy_cache", ".pytest_cache", ".ruff_cache", "wandb"}


@dataclass(frozen=True)
class Snapshot:
    """One code state. ``files``: path (relative to ``root``) → blob hash; ``diff``: the
    blob of git's diff against ``commit`` ("" when clean or without git)."""

    id: str
    root: str
    commit: str = ""
    dirty: bool = False
    diff: str = ""
    files: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        """``commit 1a2b3c4d5e + local changes``, ``commit 1a2b3c4d5e, clean`` or
        ``no git``: what the views say of it."""
        if not self.commit:
            return "no git"
        return f"commit {self.commit[:10]}" + (" + local changes" if self.dirty else ", clean")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class SnapshotStore:
    """Blobs and manifests under ``<state dir>/snapshots``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._seen: dict[str, tuple[tuple[int, int, int, int], str]] = {}   # put_file's

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_of(digest)
        if not path.exists():
            _write_whole(path, data)
        return digest

    def put_file(self, path: str, stat: os.stat_result) -> str:
        """Put the file at ``path`` (whose ``os.stat`` is ``stat``); its hash. A file seen
        before, unchanged since (its times, size and inode; not changed in the last 2 s, as
        git decides a racy file), is not read again."""
        key = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
        seen = self._seen.get(path)
        if seen is not None and seen[0] == key and self.has(seen[1]) and \
                time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > 2_000_000_000:
            return seen[1]
        with open(path, "rb") as f:
            digest = self.put(f.read())
        self._seen[path] = (key, digest)
        return digest

    def blob(self, digest: str) -> bytes:
        return self.path_of(digest).read_bytes()

    def path_of(self, digest: str) -> Path:
        """The file that holds blob ``digest`` (never written in place)."""
        return self.folder / _blob_name(digest)

    def save(self, snapshot: Snapshot) -> None:
        path = self.folder / f"{snapshot.id}.json"
        if not path.exists():
            _write_whole(path, snapshot.to_json().encode())

    def load(self, snapshot_id: str) -> Snapshot:
        """Snapshot ``snapshot_id``'s manifest (``OSError`` when it is not here;
        ``SnapshotError`` when it is damaged)."""
        path = self.folder / f"{snapshot_id}.json"
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            return _snapshot(text)
        except (ValueError, TypeError, AttributeError) as e:
            raise SnapshotError(f"{path} is damaged ({type(e).__name__}: {e}): the code of "
                                "the runs that name it cannot be shown or run again") from None

    def has(self, digest: str) -> bool:
        """Whether the blob ``digest`` is here."""
        return self.path_of(digest).is_file()

    def holds(self, snapshot_id: str) -> bool:
        """Whether snapshot ``snapshot_id``'s manifest is here."""
        return (self.folder / f"{snapshot_id}.json").is_file()

    def tree_of(self, commit: str) -> str | None:
        """The blob of ``commit``'s packaged files (a tar, ``pack_tree``), if here."""
        path = self.folder / "commits" / commit
        digest = path.read_text(encoding="ascii").strip() if path.is_file() else ""
        return digest if digest and self.has(digest) else None

    def keep_tree(self, commit: str, digest: str) -> None:
        _write_whole(self.folder / "commits" / commit, digest.encode())


def _blob_name(digest: str) -> str:
    """Where blob ``digest`` is under a store, here or at a storage URI."""
    return f"blobs/{digest[:2]}/{digest}"


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``path`` so that no reader sees it half written, through a temporary name no
    other writer of the store uses at once (the driver's two scanning paths, another
    driver)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def kept_copy(snapshot: Snapshot, store: SnapshotStore, path: Path) -> Path | None:
    """The file in ``store`` that holds ``path`` as ``snapshot`` kept it (a file the row
    names, or an untracked one), or None: what a kind reads as the config the row ran with
    or was queued with, not the one saved since."""
    real = os.path.realpath(os.path.expanduser(str(path)))
    digest = snapshot.files.get(_relative(real, snapshot.root))
    return store.path_of(digest) if digest and store.has(digest) else None


def _snapshot(text: str) -> Snapshot:
    data = json.loads(text)
    data["skipped"] = tuple(data.get("skipped") or ())
    return Snapshot(**data)


def _blobs(snapshot: Snapshot) -> set[str]:
    return {d for d in (snapshot.diff, *snapshot.files.values()) if d}


def publish(snapshot_id: str, store: SnapshotStore, uri: str, sent: set[str]) -> str:
    """Copy snapshot ``snapshot_id`` — its manifest, the blobs it names and, for a git
    snapshot, its commit's files packaged (``pack_tree``), for a node whose checkout lacks
    the commit — to ``uri`` (``<storage>/snapshots``), for nodes that do not share the
    state dir; ``sent``: the blobs and commits this process copied before (not copied
    again; added to). The manifest goes after its blobs, so a node that finds it finds
    them. Returns what a user should know ("" when all went): a commit too large to
    package runs only on nodes whose checkout has it."""
    from orchestrator.infra.storage import join, write_bytes, write_text

    def send(digest: str) -> None:
        if digest not in sent:
            write_bytes(join(uri, _blob_name(digest)), store.blob(digest))
            sent.add(digest)

    snapshot = store.load(snapshot_id)
    for digest in sorted(_blobs(snapshot)):
        send(digest)
    write_text(join(uri, f"{snapshot_id}.json"), snapshot.to_json())
    commit = snapshot.commit
    if not commit or f"commit {commit}" in sent:
        return ""
    try:
        digest = store.tree_of(commit) or pack_tree(Path(snapshot.root), commit, store)
    except SnapshotError as e:
        sent.add(f"commit {commit}")   # said once
        return f"snapshot {snapshot_id}: {e}"
    send(digest)
    write_text(join(uri, "commits", commit), digest)
    sent.add(f"commit {commit}")
    return ""


def pack_tree(root: Path, commit: str, store: SnapshotStore) -> str:
    """``commit``'s files as one tar blob in ``store`` (``git archive``), kept as its
    packaged tree; the blob's hash. At most ``MAX_TREE_BYTES``."""
    archive = subprocess.Popen(["git", "-C", str(root), "archive", "--format=tar", commit],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    data = archive.stdout.read(MAX_TREE_BYTES + 1)
    archive.stdout.close()
    if len(data) > MAX_TREE_BYTES:
        archive.kill()
        archive.wait()
        raise SnapshotError(f"commit {commit[:10]}'s files are over {MAX_TREE_BYTES >> 20} MiB,"
                            " so they are not copied to storage: a node runs it only if its "
                            f"checkout of {root} has that commit")
    if archive.wait(timeout=600) != 0:
        raise SnapshotError(f"git archive {commit[:10]} failed in {root}")
    digest = store.put(data)
    store.keep_tree(commit, digest)
    return digest


def fetch_snapshot(uri: str, snapshot_id: str, store: SnapshotStore) -> Snapshot:
    """Snapshot ``snapshot_id`` from ``uri`` (where ``publish`` put it) into ``store`` on
    this node: its manifest and the blobs it does not have yet, each checked against its
    name (a blob is its content's hash); and, when this node's checkout lacks its commit,
    the commit's packaged files."""
    from orchestrator.infra.storage import StorageError, join, read_text

    snapshot = _snapshot(read_text(join(uri, f"{snapshot_id}.json")))
    for digest in sorted(_blobs(snapshot)):
        _fetch_blob(uri, digest, store)
    commit = snapshot.commit
    if commit and not _has_commit(Path(snapshot.root), commit) and not store.tree_of(commit):
        try:
            digest = read_text(join(uri, "commits", commit)).strip()
        except StorageError:
            digest = ""   # not packaged (too large): materialize says what to do
        if digest:
            _fetch_blob(uri, digest, store)
            store.keep_tree(commit, digest)
    store.save(snapshot)
    return snapshot


def _fetch_blob(uri: str, digest: str, store: SnapshotStore) -> None:
    from orchestrator.infra.storage import join, read_bytes

    if not store.has(digest):
        data = read_bytes(join(uri, _blob_name(digest)))
        if store.put(data) != digest:
            raise SnapshotError(f"blob {digest} in {uri} is damaged (its content has "
                                "another hash)")


def _has_commit(root: Path, commit: str) -> bool:
    """Whether the git checkout at ``root`` (on this node) holds ``commit``."""
    if not root.is_dir():
        return False
    try:
        done = subprocess.run(["git", "-C", str(root), "cat-file", "-e", f"{commit}^{{commit}}"],
                              capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def named_words(command: str) -> list[str]:
    """The words of ``command`` that name a config file: the value of ``--config``/``-c``/
    ``--cfg`` (``--config=X`` too), as written."""
    try:
        words = shlex.split(command or "")
    except ValueError:
        words = (command or "").split()
    out = []
    for i, word in enumerate(words):
        if word in ("--config", "-c", "--cfg") and i + 1 < len(words):
            out.append(words[i + 1])
        elif word.startswith(("--config=", "--cfg=")):
            out.append(word.split("=", 1)[1])
    return out


def named_files(command: str, config: str, base: Path) -> list[Path]:
    """The files a row names: its ``Config`` cell and the value of ``--config``/``-c``
    (``--config=X`` too) in its command, where they exist."""
    out = []
    for name in ([config] if config else []) + named_words(command):
        path = (base / Path(name).expanduser()).resolve()
        if path.is_file():
            out.append(path)
    return out


def import_dirs(root: Path) -> tuple[str, ...]:
    """The folders inside the tree at ``root`` (relative; "." for itself) that this
    interpreter imports from though no script runs there: where an editable install of
    the project points (``pip install -e .``: a ``.pth`` file's folder, or the package
    folders setuptools' finder maps). A job run from a frozen copy gets the copy's same
    folders first on ``PYTHONPATH``, or it would import the live tree's code."""
    import sys

    root = Path(root).resolve()
    candidates = list(sys.path)
    for name, module in list(sys.modules.items()):
        mapping = getattr(module, "MAPPING", None) if name.startswith("__editable__") else None
        if isinstance(mapping, dict):
            candidates += [os.path.dirname(str(p)) for p in mapping.values()]
    out: list[str] = []
    for folder in filter(os.path.isdir, candidates):
        real = os.path.realpath(folder)
        rel = "." if real == str(root) else _relative(real, root)
        if not rel.startswith("/") and rel not in out:
            out.append(rel)
    return tuple(out)


#: where a frozen copy keeps the files its row names from outside its tree, by their path
OUTSIDE = ".orchestrator-outside"


def frozen_path(copy: Path, root: Path, path: Path) -> Path:
    """Where the frozen copy at ``copy`` of the tree at ``root`` holds ``path`` (a file
    the row named from outside the tree: under ``OUTSIDE``, by its absolute path)."""
    return _in_copy(copy, _relative(os.path.realpath(os.path.expanduser(str(path))), root))


def _in_copy(copy: Path, name: str) -> Path:
    """Where a frozen copy holds the file a snapshot names ``name``."""
    return Path(copy) / (f"{OUTSIDE}{name}" if name.startswith("/") else name)


@dataclass(frozen=True)
class Scan:
    """A folder's code state before the files one row names are added: what every row
    queued from that folder at that moment shares (``take`` adds each row's own)."""

    root: Path
    commit: str
    diff: str
    files: dict[str, str]
    skipped: tuple[str, ...]
    dirty: bool
    total: int
    leave_out: tuple[Path, ...]


def scan(folder: Path, store: SnapshotStore, *, leave_out: Iterable[Path] = (),
         globs: Iterable[str] = ("*.py",)) -> Scan:
    """The code state of ``folder`` (its git work tree, or the files under ``globs``),
    its blobs put in ``store``; ``leave_out``: paths never kept (the state dir, the queue
    file)."""
    folder = Path(folder).resolve()
    left = tuple(Path(p).resolve() for p in leave_out)
    root, commit, diff, candidates, withheld = _git(folder, store, left)
    untracked = set(candidates) if root is not None else set()
    skipped = [f"{name}: its changes left out: it may hold secrets" for name in withheld]
    if root is None:
        root = folder
        candidates = _walk(folder, tuple(globs), left, skipped)
    files: dict[str, str] = {}
    total = _keep(candidates, root, left, store, files, skipped, 0)
    dirty = bool(diff) or any(_relative(p, root) in files for p in untracked)
    return Scan(root, commit, diff, files, tuple(skipped), dirty, total, left)


def take(folder: Path, named: Iterable[Path], store: SnapshotStore, *,
         leave_out: Iterable[Path] = (), globs: Iterable[str] = ("*.py",),
         scanned: Scan | None = None) -> Snapshot:
    """Snapshot ``folder`` (or reuse ``scanned``, its ``scan``) and the ``named`` files
    into ``store``."""
    base = scanned or scan(folder, store, leave_out=leave_out, globs=globs)
    files, skipped = dict(base.files), list(base.skipped)
    _keep(named, base.root, base.leave_out, store, files, skipped, base.total, named=True)
    body = {"root": str(base.root), "commit": base.commit, "diff": base.diff, "files": files,
            "skipped": sorted(skipped)}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    snapshot = Snapshot(id=digest, root=str(base.root), commit=base.commit, dirty=base.dirty,
                        diff=base.diff, files=files, skipped=tuple(sorted(skipped)))
    store.save(snapshot)
    return snapshot


def _keep(paths: Iterable[str | Path], root: Path, leave_out: tuple[Path, ...],
          store: SnapshotStore, files: dict[str, str], skipped: list[str], total: int, *,
          named: bool = False) -> int:
    """Put each of ``paths`` that may be kept into ``store`` and ``files`` (relative
    path → blob), or say in ``skipped`` why not; the bytes kept in all, after. Past
    ``MAX_TOTAL_BYTES`` the rest are not looked at and one line says how many (an
    untracked data folder of 20,000 images is one line, not 20,000); files the row
    ``named`` are kept whatever the total. Paths as strings: a scan looks at thousands
    of files, again as each attempt starts."""
    top, left = str(root), tuple(map(str, leave_out))
    paths = list(paths)
    for i, path in enumerate(paths):
        name = os.path.abspath(path)
        rel = _relative(name, top)
        if rel in files:
            continue
        why, stat = _why_not(name, top, left)
        if why:
            skipped.append(f"{rel}: {why}")
            continue
        size = stat.st_size
        if size > MAX_FILE_BYTES:
            skipped.append(f"{rel}: {size:,} bytes, over the snapshot's cap of "
                           f"{MAX_FILE_BYTES >> 20} MiB a file: commit it, or add it to "
                           ".gitignore if it is data")
            continue
        if total + size > MAX_TOTAL_BYTES and not named:
            skipped.append(f"{rel} and the {len(paths) - i - 1:,} files after it: left out, "
                           f"over the snapshot's cap of {MAX_TOTAL_BYTES >> 20} MiB in all: "
                           "add data folders to .gitignore, or commit what is code")
            break
        try:
            files[rel] = store.put_file(name, stat)
        except FileNotFoundError:   # an editor's temporary file, saved away meanwhile
            skipped.append(f"{rel}: left out: it went away while the snapshot was taken")
            continue
        total += size
    return total


def _git(folder: Path, store: SnapshotStore, leave_out: tuple[Path, ...]
         ) -> tuple[Path | None, str, str, list[Path], list[str]]:
    """``(work tree root, HEAD, diff blob, untracked files, changed tracked files whose
    change the diff withholds as a secret)``; root None without git.
    ``leave_out`` inside the tree is not even listed (a state dir holds thousands of
    logs)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              timeout=60, env={**os.environ, **_NO_LOCKS})
    try:
        top = git("rev-parse", "--show-toplevel")
    except (OSError, subprocess.TimeoutExpired):   # no git on this machine
        return None, "", "", [], []
    if top.returncode != 0:
        return None, "", "", [], []
    root = Path(top.stdout.decode().strip()).resolve()
    head = git("rev-parse", "--verify", "-q", "HEAD")
    commit = head.stdout.decode().strip() if head.returncode == 0 else ""
    excluded = [f":(exclude,top){p.relative_to(root).as_posix()}" for p in leave_out
                if root in p.parents]
    magic = "top,glob,icase"   # git pathspecs matching SECRET_PATTERNS by name anywhere
    diff, withheld = "", []
    if commit:   # our own files (a tracked config with tokens) and secrets stay out of it
        out = git("diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--", ":/",
                  *excluded, *(f":(exclude,{magic})**/{p}" for p in SECRET_PATTERNS))
        if out.returncode == 0 and out.stdout:
            diff = store.put(out.stdout)
        out = git("diff", "HEAD", "--name-only", "-z", "--",
                  *(f":({magic})**/{p}" for p in SECRET_PATTERNS))
        withheld = [n for n in out.stdout.decode(errors="replace").split("\0") if n] \
            if out.returncode == 0 else []
    untracked = git("ls-files", "--others", "--exclude-standard", "-z", "--full-name",
                    ":/", *excluded)
    names = [n for n in untracked.stdout.decode(errors="replace").split("\0") if n] \
        if untracked.returncode == 0 else []
    return root, commit, diff, [root / n for n in names], withheld


#: git never takes the index's lock for a scan (``git diff`` may refresh it): a user's own
#: git command never finds it held
_NO_LOCKS = {"GIT_OPTIONAL_LOCKS": "0"}


def _walk(folder: Path, globs: tuple[str, ...], leave_out: tuple[Path, ...],
          skipped: list[str]) -> list[str]:
    """The files under ``folder`` that ``globs`` match: not in ``leave_out`` (the state
    dir is not even walked), nor in virtualenvs and caches; at most ``MAX_WALK_FILES``
    files looked at (said in ``skipped``), so a huge folder never holds up a queue."""
    out, seen = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):   # never follows a linked folder
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if d not in _SKIP_DIRS and here / d not in leave_out)
        seen += len(filenames)
        if seen > MAX_WALK_FILES:
            skipped.append(f"{here.relative_to(folder).as_posix()}: not looked at: the folder "
                           f"holds more than {MAX_WALK_FILES:,} files; make it a git work "
                           "tree, or narrow [snapshot] globs")
            break
        out += [os.path.join(dirpath, name) for name in sorted(filenames)
                if any(fnmatch.fnmatch(name, g) for g in globs)]
    return out


def _relative(path: str | Path, root: str | Path) -> str:
    """``path`` relative to ``root``, or its absolute path when outside it (a named file
    outside the tree)."""
    name, top = os.path.abspath(path), str(root)
    prefix = top if top.endswith(os.sep) else top + os.sep
    return name[len(prefix):] if name.startswith(prefix) else name


#: SECRET_PATTERNS as one expression, matched against a lower-cased file name
_SECRET = re.compile("|".join(fnmatch.translate(p) for p in SECRET_PATTERNS))


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top if top.endswith(os.sep) else top + os.sep)


def _why_not(path: str, root: str, leave_out: tuple[str, ...]
             ) -> tuple[str, os.stat_result | None]:
    """Why ``path`` (absolute) is not kept ("" when it is), and its stat when it is.
    Candidates come from a walk that never enters a linked folder, from git (which lists
    a link, not through it) or resolved already: only the file itself may be a link."""
    if _SECRET.match(os.path.basename(path).lower()):
        return "left out: it may hold secrets", None
    real = path
    if os.path.islink(path):
        real = os.path.realpath(path)
        if not _within(real, root):
            return f"left out: a symlink out of the work tree (to {real})", None
    if any(_within(real, p) for p in leave_out):
        return "left out: the orchestrator's own file", None
    try:
        stat = os.stat(real)
    except OSError:
        return "left out: not a file", None
    if not S_ISREG(stat.st_mode):
        return "left out: not a file", None
    return "", stat


# ------------------------------------------------------------------- comparing snapshots
def code_diff(a: Snapshot, b: Snapshot, store: SnapshotStore, *, stat: bool = False) -> str:
    """What changed from ``a``'s code to ``b``'s, as git's unified diff (``stat``: its
    ``--stat`` summary): each snapshot is rebuilt as a tree (its commit, its diff applied,
    its untracked and named files added) in a throw-away object store beside the
    repository's own, which is never written. Without git (or when a commit is no longer
    in the repository): file by file with difflib."""
    with tempfile.TemporaryDirectory(prefix="orch-diff-") as tmp:
        trees = _trees(a, b, store, Path(tmp)) if a.root == b.root else None
        if trees is not None:
            env, tree_a, tree_b = trees
            out = subprocess.run(["git", "-C", a.root, "diff", "--no-color", "--no-ext-diff",
                                  *(["--stat"] if stat else []), tree_a, tree_b],
                                 capture_output=True, env=env, timeout=120)
            if out.returncode == 0:   # (+ the named files outside the tree)
                return out.stdout.decode("utf-8", "replace") + _file_diff(
                    a, b, store, stat=stat, outside_only=True)
    return _file_diff(a, b, store, stat=stat)


def _trees(a: Snapshot, b: Snapshot, store: SnapshotStore, tmp: Path
           ) -> tuple[dict[str, str], str, str] | None:
    root = Path(a.root)
    if not (a.commit and b.commit and root.is_dir()):
        return None
    common = subprocess.run(["git", "-C", str(root), "rev-parse", "--git-common-dir"],
                            capture_output=True, text=True, timeout=60)
    if common.returncode != 0:
        return None
    objects = (root / common.stdout.strip()).resolve() / "objects"
    (tmp / "objects").mkdir()
    env = {**os.environ, "GIT_OBJECT_DIRECTORY": str(tmp / "objects"),
           "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects)}
    trees = []
    for snapshot in (a, b):
        index = {**env, "GIT_INDEX_FILE": str(tmp / f"index-{snapshot.id}")}

        def git(*args: str, data: bytes | None = None, env=index) -> str | None:
            done = subprocess.run(["git", "-C", str(root), *args], input=data,
                                  capture_output=True, env=env, timeout=120)
            return done.stdout.decode().strip() if done.returncode == 0 else None

        if git("read-tree", snapshot.commit) is None:
            return None   # the commit is gone (rebased away, another clone)
        if snapshot.diff and git("apply", "--cached", "--binary", "--whitespace=nowarn",
                                 data=store.blob(snapshot.diff)) is None:
            return None
        entries = []
        for rel, digest in sorted(snapshot.files.items()):
            if rel.startswith("/"):
                continue   # a named file outside the tree: compared by _file_diff
            sha = git("hash-object", "-w", "--stdin", data=store.blob(digest))
            if sha is None:
                return None
            entries.append(f"100644 {sha}\t{rel}")
        if entries and git("update-index", "--add", "--index-info",
                           data=("\n".join(entries) + "\n").encode()) is None:
            return None
        tree = git("write-tree")
        if tree is None:
            return None
        trees.append(tree)
    return env, trees[0], trees[1]


def _file_diff(a: Snapshot, b: Snapshot, store: SnapshotStore, *, stat: bool,
               outside_only: bool = False) -> str:
    """File by file, for snapshots git cannot rebuild: the kept files' differences (and
    whether the commits or their local changes differ); ``outside_only``: only the named
    files outside the work tree."""
    out = []
    if (a.commit, a.diff) != (b.commit, b.diff) and not outside_only:
        out.append(f"commit {a.commit[:10] or '(none)'}{' + local changes' if a.diff else ''}"
                   f" -> {b.commit[:10] or '(none)'}{' + local changes' if b.diff else ''}\n")
    for rel in sorted(set(a.files) | set(b.files)):
        da, db = a.files.get(rel), b.files.get(rel)
        if da == db or (outside_only and not rel.startswith("/")):
            continue
        old = store.blob(da).decode("utf-8", "replace").splitlines(keepends=True) if da else []
        new = store.blob(db).decode("utf-8", "replace").splitlines(keepends=True) if db else []
        if stat:
            out.append(f" {rel} | {'new' if not da else 'gone' if not db else 'changed'}\n")
            continue
        out.extend(difflib.unified_diff(old, new, f"a/{rel}" if da else "/dev/null",
                                        f"b/{rel}" if db else "/dev/null"))
    return "".join(out)


# ------------------------------------------------------------------- running from one
def materialize(snapshot: Snapshot, store: SnapshotStore, dest: Path, *,
                globs: Iterable[str] = ("*.py",), leave_out: Iterable[Path] = ()) -> Path:
    """A frozen copy of ``snapshot``'s code at ``dest`` (its commit, its diff applied, its
    untracked and named files), and a link to the live tree's copy of what is not code
    (what git ignores — data, checkpoints, virtualenvs —, the files the snapshot left out,
    such as ``.env``), so a job reads its data as before but only the code it was queued
    with. A named file from outside the tree goes under ``OUTSIDE`` (``frozen_path``; the
    job's command is pointed there); ``leave_out`` (the state dir) is neither copied nor
    linked. Returns ``dest``."""
    root, dest = Path(snapshot.root), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    quiet = {**os.environ, "GIT_CEILING_DIRECTORIES": str(dest.parent)}  # dest is no repo
    if snapshot.commit:
        _commit_files(snapshot, store, dest)
        if snapshot.diff:
            done = subprocess.run(["git", "apply", "--binary", "--whitespace=nowarn", "-"],
                                  input=store.blob(snapshot.diff), cwd=dest, env=quiet,
                                  capture_output=True, timeout=600)
            if done.returncode != 0:
                raise SnapshotError(f"the snapshot's local changes do not apply to "
                                    f"{snapshot.commit}: {done.stderr.decode().strip()}")
        _submodules(snapshot, store, dest)
    for rel, digest in snapshot.files.items():
        path = _in_copy(dest, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.blob(digest))
    left = tuple(Path(p).resolve() for p in leave_out)
    for rel in _not_code(snapshot, root, tuple(globs), left):
        link, target = dest / rel, root / rel
        real = target.resolve()
        if any(real == p or p in real.parents for p in left):
            continue   # the state dir (the copy is in it): no loop through a link
        if not (link.exists() or link.is_symlink()) and target.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target, target_is_directory=target.is_dir())
    return dest


class SnapshotError(OrchestratorError, RuntimeError):
    """A snapshot cannot be turned back into its code."""


def _submodules(snapshot: Snapshot, store: SnapshotStore, dest: Path) -> None:
    """Fill each git submodule of the frozen copy (``git archive`` leaves it an empty
    folder) with the commit the snapshot names for it — its commit's, or the one its
    diff moved it to — from the submodule's checkout in the live tree. Where that
    checkout lacks the commit (or is not on this node) the folder links to the live
    checkout, said on the job's log: local changes inside a submodule are not part of a
    snapshot."""
    import sys

    root = Path(snapshot.root)
    diff = store.blob(snapshot.diff).decode("utf-8", "replace") if snapshot.diff else ""
    if not (dest / ".gitmodules").is_file() and " 160000" not in diff:
        return
    listed = subprocess.run(["git", "-C", str(root), "ls-tree", "-r", "-z", snapshot.commit],
                            capture_output=True, timeout=120)
    pins = {}
    for entry in listed.stdout.decode("utf-8", "replace").split("\0"):
        meta, _, path = entry.partition("\t")
        if meta.startswith("160000 commit "):
            pins[path] = meta.split()[2]
    path = ""
    for line in diff.splitlines():   # the commits the local changes moved submodules to
        if line.startswith("diff --git a/"):
            path = line[len("diff --git a/"):].split(" b/", 1)[0]
        elif line.startswith("deleted file mode 160000"):
            pins.pop(path, None)
        elif line.startswith("+Subproject commit "):
            pins[path] = line.split()[2].removesuffix("-dirty")
    for path, commit in sorted(pins.items()):
        here, live = dest / path, root / path
        if here.is_symlink() or (here.is_dir() and any(here.iterdir())):
            continue
        here.mkdir(parents=True, exist_ok=True)
        if live.is_dir() and _unpack(live, commit, here):
            continue
        if live.is_dir():
            here.rmdir()
            here.symlink_to(live, target_is_directory=True)
            said = f"links the live checkout {live}"
        else:
            said = "is left empty: no checkout of it on this node"
        print(f"[orchestrator] submodule {path}: commit {commit[:10]} is not in its checkout; "
              f"the frozen copy {said}", file=sys.stderr)


def _unpack(repo: Path, commit: str, dest: Path) -> bool:
    """``commit``'s files from the git repository at ``repo`` into ``dest`` (``git
    archive``, streamed); whether git gave them."""
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", commit],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
            tar.extractall(dest, filter="data")
    except tarfile.ReadError:   # nothing came: git refused
        pass
    return archive.wait(timeout=600) == 0


def _commit_files(snapshot: Snapshot, store: SnapshotStore, dest: Path) -> None:
    """``snapshot``'s commit's files into ``dest``: from this node's checkout when it has
    the commit, else from the packaged tree a storage URI brought."""
    root, commit = Path(snapshot.root), snapshot.commit
    if _has_commit(root, commit):
        if not _unpack(root, commit, dest):
            raise SnapshotError(f"git archive {commit} failed in {root}: is the commit "
                                "still there?")
        return
    digest = store.tree_of(commit)
    if digest is None:
        import socket

        raise SnapshotError(f"commit {commit[:10]} is not in {root} on this node "
                            f"({socket.gethostname()}), and no copy of its files came with "
                            "the snapshot: fetch that commit into the node's checkout, or set "
                            "a storage URI (the driver then copies each commit's files there)")
    with tarfile.open(fileobj=io.BytesIO(store.blob(digest)), mode="r:") as tar:
        tar.extractall(dest, filter="data")


def _not_code(snapshot: Snapshot, root: Path, globs: tuple[str, ...],
              leave_out: tuple[Path, ...]) -> list[str]:
    """What a frozen copy links to the live tree: git's ignored paths (whole folders as
    one), and what the snapshot left out; without git, what ``globs`` does not match
    (a folder without any code in it as one)."""
    left = [s.split(": ", 1)[0] for s in snapshot.skipped]
    if snapshot.commit:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "--others", "--ignored",
                              "--exclude-standard", "--directory", "-z"],
                             capture_output=True, timeout=120)
        ignored = [n.rstrip("/") for n in out.stdout.decode(errors="replace").split("\0") if n]
        return [*ignored, *left]
    out, code_dirs = [], set()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and here / d not in leave_out]
        if any(fnmatch.fnmatch(f, g) for f in filenames for g in globs):
            rel = here.relative_to(root)
            code_dirs.update([rel, *rel.parents])
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).relative_to(root)
        if here not in code_dirs or root / here in leave_out:
            dirnames[:] = []
            continue
        out += [(here / d).as_posix() for d in dirnames if here / d not in code_dirs]
        out += [(here / f).as_posix() for f in filenames
                if not any(fnmatch.fnmatch(f, g) for g in globs)]
    return [*out, *left]


def main(argv: list[str] | None = None) -> int:
    """``python -m orchestrator.store.snapshot STORE ID DEST [GLOBS [REMOTE]]``: what a job
    runs first under ``[snapshot] mode = run`` (on its own node, before its command).
    ``REMOTE``: where the driver published the snapshot (``<storage>/snapshots``), fetched
    into this node's ``STORE`` when it is not there (a node without the shared state dir)."""
    import sys

    from orchestrator.infra.storage import StorageError, public

    args = sys.argv[1:] if argv is None else argv
    store_dir, snapshot_id, dest = args[:3]
    globs = tuple(g for g in (args[3] if len(args) > 3 else "*.py").split(",") if g)
    remote = args[4] if len(args) > 4 else ""
    store = SnapshotStore(Path(store_dir))
    if remote and not store.holds(snapshot_id):
        try:
            fetch_snapshot(remote, snapshot_id, store)
        except (OSError, SnapshotError, StorageError) as e:
            print(f"[orchestrator] cannot fetch snapshot {snapshot_id} from {public(remote)}: "
                  f"{e}", file=sys.stderr)
            return 1
    if not store.holds(snapshot_id):
        import socket

        print(f"[orchestrator] snapshot {snapshot_id} is not in {store_dir} on this node "
              f"({socket.gethostname()}): [snapshot] mode = run reads the state dir from "
              "the node that runs the row — share the state dir with every node, or set a "
              "storage URI (the driver then publishes each snapshot there; see "
              "docs/cluster.md), or use mode = record", file=sys.stderr)
        return 1
    try:
        materialize(store.load(snapshot_id), store, Path(dest), globs=globs,
                    leave_out=(Path(store_dir).resolve().parent,))   # the state dir
    except (OSError, SnapshotError, subprocess.SubprocessError, tarfile.TarError) as e:
        print(f"[orchestrator] cannot make the frozen copy of snapshot {snapshot_id} in {dest}:"
              f" {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Configuration: the seed's INI format (and the same in YAML), validated once.

Each key is one field of ``Config`` (a frozen pydantic dataclass): its section, key,
type, default and help. ``SETTINGS`` is read off those fields; loading, the unknown-key
check, ``--create_config``, the CLI overlay and docs/settings.md all use it, so adding a
setting is adding one field. Precedence: command line > config file > defaults.
"""

from __future__ import annotations

import configparser
import dataclasses
import functools
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from orchestrator.api import goal_of
from orchestrator.core import ON_OOM, RetryPolicy, parse_duration, parse_gpu_ids
from orchestrator.infra.errors import ConfigError
from orchestrator.infra.storage import StorageError, check, is_uri, public
from orchestrator.infra.validation import Bool, Float, Int, Str, did_you_mean, fix_for

__all__ = ["Config", "SETTINGS", "load_config", "write_default_config", "parse_env_vars"]


@dataclass(frozen=True)
class Setting:
    """One key of the file, as ``Config``'s field declares it."""

    section: str
    key: str
    field: str
    type: type
    default: Any
    help: str


def setting(section: str, default: Any, help: str, key: str = "", secret: bool = False) -> Any:
    """A ``Config`` field read from ``[section] key`` (``key``: the field's name unless
    given); ``help`` is what ``--create_config`` and docs/settings.md say of it; a
    ``secret`` is left out of the config's repr."""
    return dataclasses.field(default=default, repr=not secret,
                             metadata={"section": section, "key": key, "help": help})


@pydantic_dataclass(frozen=True)
class Config:
    """Every setting, declared once: its field is its section, key, type, default and
    help. Values are parsed when the object is made (``1e3``, ``yes``, ``2.0`` as the
    file writes them); derived values are parsed once, on first use."""

    # [general] -------------------------------------------------------------------------------
    csv_file: Str = setting('general', '', "queue CSV (the command line's path wins)")
    csv_encoding: Str = setting('general', '',
        "the queue CSV's encoding when it is not UTF-8, e.g. cp949 (Korean Excel) or cp1252; "
        'empty = UTF-8 (or UTF-16 with a BOM)', key='encoding')
    own_columns: Str = setting('general', '',
        'your own columns whose names look like ours (e.g. GPU, Notes2), comma-separated: not '
        'taken for a misspelled column')
    check_interval: Float = setting('general', 30.0,
        'seconds between full re-reads of the CSV (edits are also seen when the file changes)')
    max_training_process: Int = setting('general', 0,
        "most jobs running at once; 0 = as many as the cluster's resources allow")
    process_gpu_mapping: Str = setting('general', '',
        'pin GPUs per concurrent slot, e.g. process0=0+1,process1=2 (needs '
        'enable_gpu_assignment = true)')
    auto_continue: Bool = setting('general', True,
        'keep starting rows as slots free; false = run the rows that fit now, then exit')
    state_dir: Str = setting('general', '',
        'where runs/<ID>/attempt-N/ and registry.db live (default: runs/ beside the CSV)')
    storage: Str = setting('general', '',
        'where run outputs are kept on a cluster without a shared filesystem: a URI such as '
        's3://bucket/runs (pyarrow options may follow, ?endpoint_override=host:port; '
        'credentials come from the environment); empty = the state dir')
    queue_name: Str = setting('general', '',
        "name of this queue on Ray (actor names <queue>/...); default: the CSV's file name")
    default_gpus: Str = setting('general', 'auto',
        'GPUs for a row with an empty GPUs cell: a number, or auto = 1 when the cluster has '
        'GPUs, else 0')
    default_cpus: Float = setting('general', 0.0,
        'CPUs Ray reserves for a row with an empty CPUs cell')
    weight_glob: Str = setting('general', '*.pt,*.pth,*.ckpt,*.safetensors,*.bin,*.h5',
        "files in a run's directory that count as weights (comma-separated globs)")
    metric: Str = setting('general', '',
        'metric that picks the best weights and fills BestMetric, e.g. val_loss')
    metric_goal: Str = setting('general', '',
        "max or min; empty: from the metric's name (loss, error, wer, mse … are minimised, "
        'anything else maximised)')
    retry_backoff: Float = setting('general', 5.0,
        'seconds before the first retry of a crashed row (doubles per attempt, max 300)')
    stop_grace: Float = setting('general', 10.0,
        'seconds between SIGTERM and SIGKILL when stopping a job')
    runner_idle: Float = setting('general', 10.0,
        'seconds an idle warm runner is kept for the next job of the same shape')
    max_concurrent_trials: Int = setting('general', 0,
        'trials of one Kind=sweep row running at once; 0 = as many as fit')
    fork_workers: Bool = setting('general', True,
        "true = a Kind=ddp or hf row whose workers fit one node (whole GPUs each, no storage "
        "URI) is held whole by its runner, whose job forks the workers (torchrun's start); "
        'the others run on Ray Train, which may spread them over nodes; false = always Ray '
        'Train')
    # [snapshot] ------------------------------------------------------------------------------
    snapshot_mode: Str = setting('snapshot', 'record',
        "record = keep the code each row joins the queue with (its folder's git commit, the "
        'diff and untracked files, or the files under globs without git; and the files the '
        'row names) and, as each attempt starts, the code the live folder then holds, which '
        'it runs (orchestrator diff A B compares two); run = also run each attempt in a '
        'frozen copy of the code its row joined with (runs/<ID>/attempt-N/code, what is not '
        'code linked to the live folder), so edits saved after queueing never leak in; off '
        '= keep nothing', key='mode')
    snapshot_globs: Str = setting('snapshot', '*.py,*.sh,*.yaml,*.yml,*.toml,*.cfg,*.ini',
        "the files a snapshot keeps of a folder that is not a git work tree (comma-separated "
        'globs)', key='globs')
    # [retry] ---------------------------------------------------------------------------------
    retry_lost: Int = setting('retry', 3,
        'free re-queues of an attempt whose runner or node went away (then Crash)', key='lost')
    on_oom: Str = setting('retry', 'fail',
        'after an out-of-memory attempt: fail, more_gpu (double the GPUs: 0.25 → 0.5 → 1 → 2 '
        "…) or halve_batch (hf, yolo, ddp rows with params.batch_size); a row's OnOOM column "
        'wins')
    retry_oom: Int = setting('retry', 3,
        'retries after out-of-memory (more_gpu, halve_batch)', key='oom')
    stall_timeout: Float = setting('retry', 0.0,
        'seconds without log output and without a metric before an attempt counts as stalled '
        'and is stopped (0 = never)')
    retry_stalled: Int = setting('retry', 1, 'retries after a stall', key='stalled')
    time_limit: Str = setting('retry', '',
        'how long an attempt may run before it is stopped: seconds or 90m, 2h, 1h30m (empty = '
        "no limit); a row's TimeLimit column wins")
    retry_timeout: Int = setting('retry', 0, 'retries after the time limit', key='timeout')
    # [wandb] ---------------------------------------------------------------------------------
    wandb_entity: Str = setting('wandb', '', 'W&B entity passed as WANDB_ENTITY', key='entity')
    wandb_project: Str = setting('wandb', '', 'W&B project passed as WANDB_PROJECT', key='project')
    # [environment] ---------------------------------------------------------------------------
    setup_script: Str = setting('environment', '',
        "bash script sourced before each command (relative to the CSV's folder)")
    use_conda: Bool = setting('environment', False, 'activate conda_env first')
    conda_env: Str = setting('environment', '', 'conda environment name')
    env_vars: Str = setting('environment', '',
        'extra environment, e.g. PYTHONPATH=/src,TOKENIZERS_PARALLELISM=false')
    # [gpu] -----------------------------------------------------------------------------------
    enable_gpu_assignment: Bool = setting('gpu', False,
        'true = pin physical GPU ids yourself (seed modes below); false = Ray assigns GPUs '
        "from each row's GPUs column")
    default_gpu: Int = setting('gpu', 0, 'GPU for a row with an empty GpuID')
    gpu_list: Str = setting('gpu', '',
        'GPUs the pinned modes may use, e.g. 0,1,2,3 (one slot per GPU)')
    use_process_order: Bool = setting('gpu', True,
        'true = slot i gets process_gpu_mapping[i] (or gpu_list[i]); false = the GpuID column')
    allow_multi_gpu: Bool = setting('gpu', True,
        'allow one job to hold several GPUs (GPUs > 1, GpuID 0+1, a mapping like 0+1)')
    # [ray] -----------------------------------------------------------------------------------
    address: Str = setting('ray', '',
        'Ray cluster to join (ray://… or host:port); empty = RAY_ADDRESS, else a new local '
        'Ray')
    num_gpus: Float = setting('ray', -1.0,
        'GPUs a new local Ray declares (-1 = detect); logical GPUs let you try GPU logic on a '
        'laptop')
    num_cpus: Float = setting('ray', -1.0, 'CPUs a new local Ray declares (-1 = detect)')
    dashboard: Bool = setting('ray', True,
        'start the dashboard with a new local Ray (bound to 127.0.0.1)')
    namespace: Str = setting('ray', 'orchestrator', 'Ray namespace of the actors')
    keep_alive: Float = setting('ray', 300.0,
        'seconds a local Ray started by a run stays up idle, for the next runs to join (0 = '
        'each run starts its own and stops it; ORCH_RAY_KEEP_ALIVE overrides)')
    # [notify] --------------------------------------------------------------------------------
    notify_urls: Str = setting('notify', '',
        'where notifications go: apprise URLs such as json://host/hook, tgram://token/chat or '
        'mailto://…, comma or newline separated', key='urls')
    notify_url: Str = setting('notify', '', "one more apprise URL (the seed's key)", key='url')
    notify_events: Str = setting('notify', 'done, crash, stopped, queue_done, sweep_done',
        'what is notified: started, done, crash, stopped, queue_done, sweep_done, or all',
        key='events')
    notify_sound: Bool = setting('notify', False, 'ring the terminal bell when a row crashes',
        key='sound')
    notify_timeout: Float = setting('notify', 10.0, 'seconds one notification may take to send',
        key='timeout')
    # [email] ---------------------------------------------------------------------------------
    smtp_server: Str = setting('email', '',
        "SMTP server for e-mail notifications, e.g. smtp.gmail.com (empty = no e-mail); the "
        "seed's NOTIFY_SMTP_SERVER, NOTIFY_SMTP_PORT, NOTIFY_EMAIL_USERNAME, "
        'NOTIFY_EMAIL_PASSWORD, NOTIFY_FROM_ADDR and NOTIFY_TO_ADDR variables win over this '
        'section')
    smtp_port: Int = setting('email', 0,
        "SMTP port: 587 (STARTTLS), 465 (SSL) or 25; 0 = the mode's port")
    email_username: Str = setting('email', '', 'SMTP login', key='username')
    email_password: Str = setting('email', '',
        'SMTP password; prefer the NOTIFY_EMAIL_PASSWORD environment variable', key='password',
        secret=True)
    from_addr: Str = setting('email', '',
        'sender address (empty: the username, when it is an address)')
    to_addr: Str = setting('email', '', 'recipients, comma-separated')
    email_enabled: Bool = setting('email', True,
        'false = keep the settings but send no e-mail', key='enabled')
    email_mode: Str = setting('email', '',
        'ssl, starttls or insecure; empty = by the port (465 ssl, 587 starttls) and the server '
        '(one on this machine, or without a password: insecure)', key='mode')
    # not from the file ------------------------------------------------------------------
    watch: bool = False
    no_ui: bool = False
    source: str = "defaults"

    # --------------------------------------------------------------- derived (parsed once)
    @functools.cached_property
    def slots(self) -> tuple[tuple[int, ...], ...]:
        """Pinned GPU slots (``process_gpu_mapping`` or one per ``gpu_list`` entry)."""
        if self.process_gpu_mapping.strip():
            return parse_mapping(self.process_gpu_mapping, self.source)
        return tuple((g,) for g in parse_gpu_ids(self.gpu_list))

    @property
    def gpu_mode(self) -> str:
        """``ray`` (Ray assigns), ``slots`` (process order) or ``gpu_id`` (GpuID column)."""
        if not self.enable_gpu_assignment:
            return "ray"
        if not self.use_process_order:
            return "gpu_id"
        return "slots" if self.slots else "ray"

    @functools.cached_property
    def _env(self) -> tuple[tuple[str, str], ...]:
        return tuple(parse_env_vars(self.env_vars, self.source).items())

    @property
    def env(self) -> dict[str, str]:
        """``env_vars`` as a dict (a new one each time: callers may add to it)."""
        return dict(self._env)

    @property
    def goal(self) -> str:
        """``max`` or ``min``: ``metric_goal``, else what the metric's name says."""
        return self.metric_goal or goal_of(self.metric)

    @functools.cached_property
    def retry(self) -> RetryPolicy:
        """What a failed attempt does next, by its failure kind."""
        return RetryPolicy(backoff=self.retry_backoff, lost=self.retry_lost,
                           on_oom=self.on_oom, oom=self.retry_oom, stalled=self.retry_stalled,
                           timeout=self.retry_timeout, stall_timeout=self.stall_timeout,
                           time_limit=parse_duration(self.time_limit) if self.time_limit else 0.0)

    @functools.cached_property
    def own_column_names(self) -> tuple[str, ...]:
        return _listed(self.own_columns)

    @functools.cached_property
    def weight_globs(self) -> tuple[str, ...]:
        return _listed(self.weight_glob)

    @functools.cached_property
    def snapshot_patterns(self) -> tuple[str, ...]:
        return _listed(self.snapshot_globs)

    def replace(self, **changes) -> Config:
        """A copy with ``changes`` (field names), checked as the file's values are."""
        return _build(lambda: dataclasses.replace(self, **changes), self.source, changes)

    def validate(self) -> Config:
        """Check cross-field rules; return self (so calls chain)."""
        src = self.source
        if self.metric_goal not in ("", "max", "min"):
            raise ConfigError(src, "metric_goal", self.metric_goal, "use max or min")
        if self.default_gpus != "auto":
            try:
                value = float(self.default_gpus)
            except ValueError:
                raise ConfigError(src, "default_gpus", self.default_gpus,
                                  "use auto or a number such as 0, 0.5, 1") from None
            if value < 0 or (value > 1 and value != int(value)):
                raise ConfigError(src, "default_gpus", self.default_gpus,
                                  "use a fraction <= 1 or a whole number")
        for key in ("check_interval", "retry_backoff", "stop_grace", "runner_idle",
                    "stall_timeout"):
            if getattr(self, key) < 0:
                raise ConfigError(src, key, getattr(self, key), "use a number >= 0")
        for key in ("retry_lost", "retry_oom", "retry_stalled", "retry_timeout"):
            if getattr(self, key) < 0:
                raise ConfigError(src, f"[retry] {key.removeprefix('retry_')}",
                                  getattr(self, key), "use a whole number >= 0")
        if self.on_oom not in ON_OOM:
            raise ConfigError(src, "[retry] on_oom", self.on_oom,
                              did_you_mean(self.on_oom, ON_OOM) + "use " + ", ".join(ON_OOM))
        if self.time_limit:
            try:
                parse_duration(self.time_limit)
            except ValueError as e:
                raise ConfigError(src, "[retry] time_limit", self.time_limit,
                                  f"{e}: write seconds (3600) or 90m, 2h, 1h30m") from None
        if self.max_training_process < 0:
            raise ConfigError(src, "max_training_process", self.max_training_process,
                              "use 0 (no cap) or a positive number")
        try:
            gpus = parse_gpu_ids(self.gpu_list)
        except ValueError as e:
            raise ConfigError(src, "gpu_list", self.gpu_list, f"{e}; use e.g. 0,1,2,3") from None
        slots = self.slots  # raises on a bad mapping
        listed = set(gpus)
        unlisted = sorted({g for slot in slots for g in slot} - listed) \
            if listed and self.process_gpu_mapping.strip() else []
        if unlisted:
            raise ConfigError(src, "process_gpu_mapping", self.process_gpu_mapping,
                              f"names GPU {', '.join(map(str, unlisted))}, which gpu_list = "
                              f"{self.gpu_list} does not list; map the slots to GPUs of "
                              "gpu_list, or add them to it")
        if not self.allow_multi_gpu and any(len(s) > 1 for s in slots):
            raise ConfigError(src, "process_gpu_mapping", self.process_gpu_mapping,
                              "a slot has several GPUs but allow_multi_gpu = false; set it "
                              "to true or give each slot one GPU")
        if self.snapshot_mode not in SNAPSHOT_MODES:
            raise ConfigError(src, "[snapshot] mode", self.snapshot_mode,
                              did_you_mean(self.snapshot_mode, SNAPSHOT_MODES)
                              + "use record, run or off")
        if not 0 <= self.smtp_port <= 65535:
            raise ConfigError(src, "[email] smtp_port", self.smtp_port,
                              "use a port number: 587 (STARTTLS), 465 (SSL) or 25")
        if self.email_mode.lower() not in ("", *_MAIL_MODES):
            raise ConfigError(src, "[email] mode", self.email_mode,
                              did_you_mean(self.email_mode.lower(), _MAIL_MODES)
                              + "use ssl, starttls or insecure, or leave it empty")
        if self.use_conda and not self.conda_env:
            raise ConfigError(src, "conda_env", "", "use_conda = true needs conda_env = <name>")
        parse_env_vars(self.env_vars, src)  # raises on bad env_vars
        if is_uri(self.state_dir):
            raise ConfigError(src, "state_dir", self.state_dir,
                              "the state dir holds registry.db and the driver's lock, so it "
                              "is a filesystem path; give the URI as storage = "
                              f"{self.state_dir} instead")
        if self.storage and (not is_uri(self.storage) or self.storage.startswith("file:")):
            raise ConfigError(src, "storage", self.storage,
                              "use a URI such as s3://bucket/runs or gs://bucket/runs (a "
                              "shared filesystem path goes in state_dir)")
        if self.storage:
            try:
                check(self.storage)
            except StorageError as e:
                raise ConfigError(src, "storage", public(self.storage), str(e)) from None
        del gpus
        return self


def _listed(text: str) -> tuple[str, ...]:
    """A comma-separated setting's items."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


_MAIL_MODES = ("ssl", "starttls", "insecure")
SNAPSHOT_MODES = ("record", "run", "off")


def parse_mapping(text: str, source: str = "config") -> tuple[tuple[int, ...], ...]:
    """``process0=0+1,process1=2`` → ``((0, 1), (2,))``."""
    slots: dict[int, tuple[int, ...]] = {}
    for part in _listed(text):
        name, sep, gpus = part.partition("=")
        m = re.fullmatch(r"process(\d+)", name.strip())
        if not sep or not m:
            raise ConfigError(source, "process_gpu_mapping", text,
                              f"{part!r} is not processN=GPU[+GPU…]; write e.g. "
                              "process0=0+1,process1=2")
        try:
            ids = parse_gpu_ids(gpus)
        except ValueError as e:
            raise ConfigError(source, "process_gpu_mapping", text,
                              f"{part!r}: {e}; GPUs are numbers joined by '+', e.g. "
                              "process0=0+1") from None
        if not ids:
            raise ConfigError(source, "process_gpu_mapping", text, f"{part!r} names no GPU")
        slots[int(m.group(1))] = ids
    return tuple(slots[k] for k in sorted(slots))


def parse_env_vars(text: str, source: str = "config") -> dict[str, str]:
    """``A=1,B=x`` (or ``;`` / newlines between pairs) → ``{"A": "1", "B": "x"}``."""
    out: dict[str, str] = {}
    text = text.strip()
    if not text:
        return out
    for part in re.split(r"[,;\n]\s*(?=[A-Za-z_][A-Za-z0-9_]*=)", text):
        name, sep, value = part.strip().partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise ConfigError(source, "env_vars", text,
                              f"{part!r} is not NAME=value; separate pairs with commas")
        out[name.strip()] = value.strip().rstrip(",;")
    return out


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.metadata["section"], f.metadata["key"] or f.name, f.name, type(f.default),
            f.default, f.metadata["help"])
    for f in dataclasses.fields(Config) if "section" in f.metadata)
_BY_FIELD = {s.field: s for s in SETTINGS}


def _build(make, source: str, given: dict) -> Config:
    """``make()`` (a ``Config``), with pydantic's complaint said as a ``ConfigError``:
    the key as the file writes it, the value as given, the fix."""
    try:
        return make()
    except ValidationError as e:
        error = e.errors()[0]
        name = str(error["loc"][0]) if error.get("loc") else ""
        s = _BY_FIELD.get(name)
        key = f"[{s.section}] {s.key}" if s else name
        raise ConfigError(source, key, given.get(name, error.get("input")),
                          fix_for(error, s.help if s else "")) from None


def _raw(setting: Setting, raw: Any) -> Any:
    """A value as the file gives it, or ``_DEFAULT`` when it leaves the key empty
    (YAML's empty value; an empty number). An empty boolean is false."""
    if raw is None or (setting.type in (int, float) and str(raw).strip() == ""):
        return _DEFAULT
    return raw


_DEFAULT = object()


def _sections_from_file(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        raise ConfigError(path, "config", str(path), "no such file; create one with "
                          f"--create_config {path}")
    try:
        data = path.read_bytes()
    except OSError as e:   # a folder, no permission, a broken disk
        raise ConfigError(path, "config", str(path), f"cannot be read ({e.strerror or e}): "
                          "give the path of an INI or YAML file you can read") from None
    codec = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:   # UTF-8 (with or without a BOM), or UTF-16 with its BOM (Windows Notepad)
        text = data.decode(codec)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(path, f"line {line}", f"byte(s) {data[e.start:e.end].hex(' ')}",
                          "the config is not UTF-8 text: save it as UTF-8") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ConfigError(path, f"line {line}", "a NUL byte", "the config is not a text file "
                          "(binary data): give the path of an INI or YAML file") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(path, "yaml", str(e).splitlines()[0], "fix the YAML syntax") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ConfigError(path, "yaml", type(data).__name__,
                              "the YAML must map section names to key: value maps")
        return {str(s).lower(): {str(k): v for k, v in d.items()} for s, d in data.items()}
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as e:
        raise ConfigError(path, "ini", str(e).splitlines()[0], "fix the INI syntax") from None
    return {s.lower(): dict(parser.items(s)) for s in parser.sections()}


def load_config(path: str | Path | None = None, **overrides) -> Config:
    """Defaults, then the file (INI or YAML), then ``overrides`` (CLI; ``None`` = not given)."""
    values: dict[str, Any] = {}
    source = "defaults"
    if path:
        path = Path(path).expanduser()
        source = str(path)
        by_key = {(s.section, s.key): s for s in SETTINGS}
        for section, items in _sections_from_file(path).items():
            known = [s.key for s in SETTINGS if s.section == section]
            if not known:
                sections = sorted({s.section for s in SETTINGS})
                raise ConfigError(path, f"[{section}]", "",
                                  did_you_mean(section, sections, "[{}]")
                                  + f"valid sections: {', '.join(sections)}")
            for key, raw in items.items():
                setting = by_key.get((section, key.lower()))
                if setting is None:
                    raise ConfigError(path, f"[{section}] {key}", raw,
                                      did_you_mean(key.lower(), known)
                                      + f"valid keys in [{section}]: {', '.join(known)}")
                value = _raw(setting, raw)
                if value is not _DEFAULT:
                    values[setting.field] = value
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
    return _build(lambda: Config(source=source, **values), source, values).validate()


def write_default_config(path: str | Path) -> Path:
    """Write a commented INI with every key at its default."""
    path = Path(path).expanduser()
    lines = ["# Orchestrator configuration (the seed's INI format; a YAML file with the same",
             "# sections works too). Command-line flags override these values.", ""]
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            lines += ["", f"[{section}]"]
        default = s.default
        if isinstance(default, bool):
            default = str(default).lower()
        lines += [f"# {s.help}", f"{s.key} = {default}"]
    lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def check_here(config: Config, base_dir: Path, gpus_here: float | None = None) -> None:
    """What the driver can check on its own machine before any row runs: the setup
    script, conda, and pinned GPUs that this machine has (``gpus_here``: its GPU count on
    a local Ray; None: not known). A row on another node whose environment differs
    fails there with the ``setup`` kind."""
    src = config.source
    if config.setup_script:
        path = Path(config.setup_script).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise ConfigError(src, "[environment] setup_script", config.setup_script,
                              f"there is no such file ({path}; a relative path starts at the "
                              "queue file's folder): fix the path or remove setup_script")
        if not os.access(path, os.R_OK):
            raise ConfigError(src, "[environment] setup_script", config.setup_script,
                              f"{path} cannot be read: fix its permissions")
    if config.use_conda and not config.setup_script and shutil.which("conda") is None:
        raise ConfigError(src, "[environment] use_conda", "true",
                          "conda is not on PATH here: install it, put it on PATH (or in "
                          "setup_script), or set use_conda = false")
    if gpus_here is not None and config.gpu_mode == "slots":
        beyond = sorted({g for slot in config.slots for g in slot if g >= gpus_here})
        if beyond:
            key = "process_gpu_mapping" if config.process_gpu_mapping.strip() else "gpu_list"
            have = f"GPUs 0-{int(gpus_here) - 1}" if gpus_here >= 1 else "no GPU"
            raise ConfigError(src, key, getattr(config, key),
                              f"names GPU {', '.join(map(str, beyond))} but this machine "
                              f"has {have}: use GPUs it has (or start with --num-gpus N to "
                              "try it with logical GPUs)")

"""Notifications: job and queue events sent through apprise, off the scheduler's thread.

A ``Notifier`` observes status transitions (it is a scheduler observer), turns the
ones the user asked for into a title and a plain-text body, and hands them to one
background thread that sends them to every apprise URL. The caller never waits on
the network: each send has a timeout, a failing URL is logged once (redacted), and
``close(timeout)`` flushes what is queued within its bound.

Configuration: the config file's ``[notify]`` and ``[email]`` sections (``Config``'s
fields; every key in docs/settings.md)::

    [notify]
    urls = json://host/hook, tgram://bottoken/chat    # comma or newline separated
    events = done, crash, stopped, queue_done, sweep_done   # add "started" to opt in
    sound = false          # terminal bell on a crash
    timeout = 10           # seconds per send

    [email]                # the seed's keys; NOTIFY_* environment variables win
    smtp_server = smtp.example.com
    smtp_port = 587
    username = me@example.com
    from_addr = me@example.com
    to_addr = me@example.com, you@example.com
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit

import apprise

from orchestrator.core import RowStatus, StatusChanged
from orchestrator.infra.errors import ConfigError
from orchestrator.infra.validation import parse_bool

__all__ = ["JobEvent", "Notifier", "EVENTS", "DEFAULT_EVENTS", "email_url", "redact_url"]

logger = logging.getLogger(__name__)

EVENTS = ("started", "done", "crash", "stopped", "queue_done", "sweep_done")
DEFAULT_EVENTS = frozenset(EVENTS) - {"started"}
LOG_LINES = 20                     # log lines a crash notification carries
_STATUS_EVENT = {RowStatus.TRAINING.label: "started", RowStatus.DONE.label: "done",
                 RowStatus.CRASH.label: "crash", RowStatus.STOPPED.label: "stopped"}
_TYPE = {"done": apprise.NotifyType.SUCCESS, "crash": apprise.NotifyType.FAILURE,
         "stopped": apprise.NotifyType.WARNING}
#: [email] key -> the environment variable that overrides it
_EMAIL_ENV = {"smtp_server": "NOTIFY_SMTP_SERVER", "smtp_port": "NOTIFY_SMTP_PORT",
              "username": "NOTIFY_EMAIL_USERNAME", "password": "NOTIFY_EMAIL_PASSWORD",
              "from_addr": "NOTIFY_FROM_ADDR", "to_addr": "NOTIFY_TO_ADDR"}
_MAIL_PORTS = {"ssl": 465, "starttls": 587, "insecure": 25}


# ===================================================================== the event
@dataclass(frozen=True)
class JobEvent:
    """What one notification about one job says."""

    job_id: str
    name: str = ""
    status: str = ""               # a RowStatus label: "Done", "Crash", "Stopped", …
    attempt: int = 0
    duration_s: float | None = None
    node: str = ""
    gpus: str = ""
    best_metric: float | str | None = None
    metrics: dict = field(default_factory=dict)
    weight_file: str = ""
    wandb_run_id: str = ""
    log_path: str = ""
    log_tail: str = ""
    error: str = ""
    failure: str = ""              # the failure kind (oom, setup, lost, …) of a Crash/Stopped
    queue: str = ""

    @classmethod
    def from_change(cls, change: StatusChanged, queue: str = "") -> JobEvent:
        """What to say of one status change (``StatusChanged``, as observers receive it)."""
        report, row = change.report, change.row
        started = (report.started if report is not None else None) or change.started
        ended = report.ended if report is not None else None
        if ended is None and started and change.new.is_finished:
            ended = change.time or time.time()
        return cls(
            job_id=change.job_id, name=change.name, status=change.new.label,
            attempt=change.attempt, duration_s=ended - started if started and ended else None,
            node=str(row.get("Node") or (report.node if report else "") or ""),
            gpus=str(change.gpus or ""),
            best_metric=row.get("BestMetric") or (report.best_metric if report else None),
            metrics=dict(report.metrics) if report is not None else {},
            weight_file=str(row.get("WeightFile") or ""),
            wandb_run_id=change.wandb_run_id or str(row.get("WandbRunID") or ""),
            log_path=str((report.log_path if report else "") or row.get("LogFile") or ""),
            log_tail=report.log_tail if report is not None else "",
            error=change.error,
            failure=change.failure.kind.value if change.failure is not None else "",
            queue=queue)

    @property
    def kind(self) -> str:
        """The event name (``crash``, ...), or "" for a status nobody is told about."""
        return _STATUS_EVENT.get(self.status, "")

    def title(self) -> str:
        kind = f" ({self.failure})" if self.failure and self.kind != "stopped" else ""
        return f"{_prefix(self.queue)}{self.job_id} {self.status}{kind}"

    def body(self) -> str:
        lines = [f"ID: {self.job_id}" + (f" ({self.name})" if self.name else ""),
                 f"Status: {self.status}" + (f" (attempt {self.attempt})" if self.attempt else "")]
        if self.failure:
            lines.append(f"Failure: {self.failure}")
        if self.duration_s is not None:
            lines.append(f"Duration: {format_duration(self.duration_s)}")
        if self.node or self.gpus:
            lines.append(f"Node: {self.node or '?'}   GPUs: {self.gpus or '-'}")
        if self.best_metric not in (None, ""):
            lines.append(f"Best metric: {_number(self.best_metric)}")
        if self.metrics:
            shown = list(self.metrics.items())[:12]
            lines.append("Metrics: " + ", ".join(f"{k}={_number(v)}" for k, v in shown))
        for label, value in (("Weights", self.weight_file), ("W&B run", self.wandb_run_id),
                             ("Error", self.error), ("Log", self.log_path)):
            if value:
                lines.append(f"{label}: {value}")
        tail = self.log_tail.splitlines()[-LOG_LINES:] if self.kind == "crash" else []
        if tail:
            lines += ["", f"--- last {len(tail)} log lines ---", *tail]
        return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """``3725`` → ``1:02:05`` (h:mm:ss)."""
    h, rem = divmod(int(max(0, seconds)), 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}"


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _prefix(queue_name: str) -> str:
    return f"[{queue_name}] " if queue_name else ""


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    cells = [tuple(str(c) for c in header), *[tuple(str(c) for c in r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


# ================================================================== the notifier
@dataclass(frozen=True)
class _Message:
    title: str
    body: str
    notify_type: str


@dataclass(frozen=True)
class _Target:
    label: str                      # the URL with its secrets removed: safe to log
    apprise: apprise.Apprise
    deadline: float                 # seconds one send may take (apprise's throttle included)


class Notifier:
    """Sends job and queue events to apprise URLs from one background thread.

    Use it as a scheduler observer (it is callable as ``(job, old, new, cells)``),
    call ``queue_done(rows, best)`` at the end, then ``close()``. A notifier with no
    URLs (and no bell) is disabled: every call is a no-op.
    """

    def __init__(self, urls: Iterable[str] = (), events: Iterable[str] = DEFAULT_EVENTS, *,
                 timeout: float = 10.0, bell: bool = False, queue_name: str = ""):
        self.events, self.timeout = frozenset(events), float(timeout)
        if unknown := sorted(self.events - set(EVENTS)):
            raise ValueError(f"unknown notification events {unknown}; use some of "
                             f"{', '.join(EVENTS)}")
        self.bell, self.queue_name = bool(bell), queue_name
        asset = apprise.AppriseAsset(app_id="orchestrator", app_desc="Ray job queue")
        self._targets = [t for t in (_target(u, self.timeout, asset) for u in urls) if t]
        self._messages: queue.Queue[_Message | None] = queue.Queue()
        self._failed: set[int] = set()    # targets whose failure was logged
        self._closed = False
        self._abandon = threading.Event()
        self._thread: threading.Thread | None = None
        if self._targets:
            self._thread = threading.Thread(target=self._work, name="notify", daemon=True)
            self._thread.start()

    @classmethod
    def from_config(cls, config, *, queue_name: str | None = None,
                    environ: Mapping[str, str] | None = None) -> Notifier:
        """From the config's ``[notify]`` and ``[email]`` and the NOTIFY_* variables."""
        source = config.source
        urls = split_urls(config.notify_urls + "\n" + config.notify_url)
        mail = email_url({"smtp_server": config.smtp_server,
                          "smtp_port": str(config.smtp_port or ""),
                          "username": config.email_username, "password": config.email_password,
                          "from_addr": config.from_addr, "to_addr": config.to_addr,
                          "enabled": str(config.email_enabled), "mode": config.email_mode},
                         os.environ if environ is None else environ, source)
        events = [e for e in re.split(r"[\s,]+", config.notify_events.lower()) if e]
        if events == ["all"]:
            events = list(EVENTS)
        if any(e not in EVENTS for e in events):
            raise ConfigError(source, "[notify] events", config.notify_events,
                              f"use some of: {', '.join(EVENTS)} (or all)")
        if config.notify_timeout <= 0:
            raise ConfigError(source, "[notify] timeout", config.notify_timeout,
                              "use seconds per send, e.g. 10")
        return cls(urls + ([mail] if mail else []), events or DEFAULT_EVENTS,
                   timeout=config.notify_timeout, bell=config.notify_sound,
                   queue_name=config.queue_name if queue_name is None else queue_name)

    @property
    def enabled(self) -> bool:
        return bool(self._targets) or self.bell

    # ---------------------------------------------------------------- events in
    def __call__(self, change: StatusChanged) -> None:
        """The observer: Done/Crash/Stopped (and Training) become events; an attempt that
        reports sub-runs (a sweep's trials) also sends ``sweep_done`` with them."""
        if change.old is None or not self.enabled:
            return
        if change.new.is_finished and change.details.get("trials"):
            self._trials_done(change)
        started = change.new is RowStatus.TRAINING and change.old is RowStatus.QUEUED
        if not (change.new.is_finished or started):
            return
        if _STATUS_EVENT.get(change.new.label) not in self.events:
            return
        try:
            event = JobEvent.from_change(change, queue=self.queue_name)
        except Exception as e:  # noqa: BLE001 - a notification never breaks the driver
            logger.warning("no notification for %s: %s", change.job_id, e)
            return
        self.job_event(event)

    def _trials_done(self, change: StatusChanged) -> None:
        trials = change.details.get("trials") or ()
        rows = [{"id": f"trial-{i}", "name": json.dumps(t.get("config"), default=str)[:80],
                 "status": (RowStatus.DONE if t.get("status") == "TERMINATED"
                            else RowStatus.CRASH).label,
                 "best_metric": t.get("metric")} for i, t in enumerate(trials, start=1)]
        scored = [r for r in rows if isinstance(r["best_metric"], (int, float))]
        goal_max = change.details.get("trial_goal") == "maximize"
        best = (max if goal_max else min)(scored, key=lambda r: r["best_metric"]) \
            if scored else None
        self.sweep_done(rows, best, sweep=change.job_id)

    def job_event(self, event: JobEvent) -> None:
        """Queue one job's notification (returns at once)."""
        if event.kind not in self.events:
            return
        if event.kind == "crash" and self.bell:
            _ring()
        self._submit(event.title(), event.body(), _TYPE.get(event.kind, apprise.NotifyType.INFO))

    def queue_done(self, rows: list, best: dict | None = None) -> None:
        """The queue finished: counts per status and the best run."""
        self._summary("queue_done", f"{_prefix(self.queue_name)}queue finished", rows, best)

    def sweep_done(self, rows: list[dict], best: dict | None = None, *, sweep: str = "") -> None:
        """A sweep's rows all finished: the same summary, for the sweep's rows."""
        label = f"sweep {sweep} finished" if sweep else "sweep finished"
        self._summary("sweep_done", _prefix(self.queue_name) + label, rows, best)

    def _summary(self, kind: str, title: str, rows: list, best: dict | None) -> None:
        if kind not in self.events or not self._targets:
            return
        counts = Counter(str(_pick(r, "status", "TrainingCheck") or "Pending") for r in rows)
        title += ": " + ", ".join(f"{n} {s}" for s, n in counts.most_common())
        parts = [_table(("Status", "Rows"), [*counts.most_common(), ("Total", len(rows))])]
        for status in (s for s in counts if s != RowStatus.DONE.label):
            ids = [str(_pick(r, "id", "ID")) for r in rows
                   if str(_pick(r, "status", "TrainingCheck") or "Pending") == status]
            parts.append(f"{status}: {', '.join(ids[:30])}" + (" …" if len(ids) > 30 else ""))
        if best:
            metric = _pick(best, "best_metric", "BestMetric", "metric", "value")
            parts.append("Best run\n" + _table(("ID", "Name", "Metric"), [(
                _pick(best, "id", "ID"), _pick(best, "name", "Name"),
                _number(metric) if metric not in (None, "") else "-")]))
        failed = any(s.label in counts for s in RowStatus if s.is_failed)
        self._submit(title, "\n\n".join(parts),
                     apprise.NotifyType.WARNING if failed else apprise.NotifyType.SUCCESS)

    def _submit(self, title: str, body: str, notify_type: str) -> None:
        if self._targets and not self._closed:
            self._messages.put(_Message(title, body, notify_type))

    # ------------------------------------------------------------- sending out
    def close(self, timeout: float = 10.0) -> bool:
        """Send what is queued, waiting at most ``timeout`` s; False if some was dropped."""
        if self._closed or self._thread is None:
            self._closed = True
            return True
        self._closed = True
        self._messages.put(None)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        self._abandon.set()
        logger.warning("notifications: gave up after %gs with %d message(s) unsent",
                       timeout, max(1, self._messages.qsize()))
        return False

    def _work(self) -> None:
        while (message := self._messages.get()) is not None:
            for target in self._targets:
                if self._abandon.is_set():
                    return
                self._send(target, message)

    def _send(self, target: _Target, message: _Message) -> None:
        try:
            result = target.apprise.notify(body=message.body, title=message.title,
                                           notify_type=message.notify_type,
                                           body_format=apprise.NotifyFormat.TEXT,
                                           timeout=target.deadline)
            problem = "" if result else getattr(getattr(result, "status", None), "name", "failed")
        except Exception as e:  # apprise reports by its result; this is a safety net
            problem = type(e).__name__
        if not problem or self._abandon.is_set():   # close() has said what was lost
            return
        if id(target) in self._failed:
            logger.debug("notification to %s failed again (%s)", target.label, problem.lower())
            return
        self._failed.add(id(target))
        logger.warning("notification to %s failed (%s); further failures of this URL are "
                       "not logged", target.label, problem.lower())


def _target(url: str, timeout: float, asset) -> _Target | None:
    if not re.search(r"[?&](cto|rto)=", url):   # apprise's connect/read timeouts
        url += ("&" if "?" in url else "?") + f"cto={timeout:g}&rto={timeout:g}"
    obj = apprise.Apprise(asset=asset)
    with _quiet("apprise"):     # apprise echoes a URL it cannot parse, secrets and all
        added = obj.add(url)
    if not added:
        logger.warning("notify: ignoring %s://…: apprise does not accept the URL; check it "
                       "against https://appriseit.com/services/", urlsplit(url).scheme or "?")
        return None
    server = obj[0]
    throttle = float(getattr(server, "request_rate_per_sec", 0) or 0)  # e-mail: 5.5 s
    return _Target(redact_url(server.url(privacy=True)), obj, timeout + throttle)


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: no user, password, path or query (they may hold tokens)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}" + ("/…" if parts.path.strip("/") or parts.query else "")


def split_urls(text: str) -> list[str]:
    """URLs separated by newlines or commas (a comma inside a URL's query stays)."""
    parts = re.split(r"\s*\n\s*|\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)", text)
    return [p.strip().rstrip(",") for p in parts if p.strip().rstrip(",")]


def email_url(settings: Mapping[str, str], environ: Mapping[str, str],
              source: str = "config") -> str:
    """The seed's ``[email]`` keys (NOTIFY_* variables win) as an apprise mailto URL, or "".

    Port 465 → ``mailtos://…?mode=ssl``; 587 → ``mailtos://…?mode=starttls``; a server on
    this machine, or one without a password, on another port → ``mailto://…?mode=insecure``
    (other servers given a password use STARTTLS); ``mode = ssl|starttls|insecure`` overrides.
    """
    settings = {str(k).lower(): str(v).strip() for k, v in settings.items()}
    v = {key: (environ.get(env) or settings.get(key) or "").strip()
         for key, env in _EMAIL_ENV.items()}
    if not v["smtp_server"] or not _bool(settings.get("enabled", "true"), source,
                                         "[email] enabled"):
        return ""
    if settings.get("password") and not environ.get("NOTIFY_EMAIL_PASSWORD"):
        logger.warning("%s: the SMTP password is read from [email]; prefer the "
                       "NOTIFY_EMAIL_PASSWORD environment variable", source)
    try:
        port = int(v["smtp_port"]) if v["smtp_port"] else None
    except ValueError:
        raise ConfigError(source, "[email] smtp_port", v["smtp_port"],
                          "use a port number: 587 (STARTTLS), 465 (SSL) or 25") from None
    mode = settings.get("mode", "").lower() or _mail_mode(v["smtp_server"], port,
                                                         bool(v["password"]))
    if mode not in _MAIL_PORTS:
        raise ConfigError(source, "[email] mode", mode, "use ssl, starttls or insecure")
    sender = v["from_addr"] or (v["username"] if "@" in v["username"] else "")
    if not (sender or v["to_addr"]):
        raise ConfigError(source, "[email] to_addr", "", "set to_addr and from_addr (or "
                          "NOTIFY_TO_ADDR and NOTIFY_FROM_ADDR)")
    auth = ""
    if v["username"]:
        secret = f":{quote(v['password'], safe='')}" if v["password"] else ""
        auth = f"{quote(v['username'], safe='')}{secret}@"
    host = f"[{v['smtp_server']}]" if ":" in v["smtp_server"] else v["smtp_server"]
    # smtp= pins the server, so apprise's provider presets (gmail, ...) change nothing
    to = ",".join(a for a in re.split(r"[,;\s]+", v["to_addr"]) if a) or sender
    query = {"smtp": v["smtp_server"], "mode": mode, "format": "text", "from": sender, "to": to}
    scheme = "mailto" if mode == "insecure" else "mailtos"
    return (f"{scheme}://{auth}{host}:{port or _MAIL_PORTS[mode]}?"
            + urlencode(query, quote_via=quote))


def _mail_mode(server: str, port: int | None, has_password: bool) -> str:
    if port == 465:
        return "ssl"
    if port == 587:
        return "starttls"
    local = server in ("localhost", "::1") or server.startswith("127.")
    return "insecure" if local or (port and not has_password) else "starttls"


def _bool(text: str, source: str, key: str) -> bool:
    value = parse_bool(text)
    if value is None:
        raise ConfigError(source, key, text, "use true or false")
    return value


def _pick(d, *keys):
    """The first of ``keys`` that ``d`` (a mapping: a CSV row, a dict; or an object such
    as the views' ``RowView``) has a value for, else ""."""
    get = d.get if isinstance(d, Mapping) else (lambda k: getattr(d, k, None))
    return next((value for k in keys if (value := get(k)) not in (None, "")), "")


def _ring() -> None:
    """The terminal bell, when stdout is a terminal."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if sys.stdout.isatty():
            sys.stdout.write("\a")
            sys.stdout.flush()


def _drop(record) -> bool:
    return False


@contextlib.contextmanager
def _quiet(name: str):
    """Drop every record of logger ``name`` (not its children) for a moment."""
    logging.getLogger(name).addFilter(_drop)
    try:
        yield
    finally:
        logging.getLogger(name).removeFilter(_drop)

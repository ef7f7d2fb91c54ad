"""Notifications through real apprise to real local servers (HTTP and SMTP), no Ray."""

from __future__ import annotations

import io
import logging
import sys
import time

import apprise
import pytest

from orchestrator.core import (
    AttemptReport,
    Failure,
    FailureKind,
    JobSpec,
    RowStatus,
    StatusChanged,
)
from orchestrator.core.events import frozen_map
from orchestrator.infra.errors import ConfigError
from orchestrator.observers.notify import JobEvent, Notifier, email_url, redact_url, split_urls
from orchestrator.store.config import Config, load_config
from tests.notify_servers import JsonSink, MailSink, closed_port, silent_port

S = RowStatus
LOG = "\n".join(f"epoch {i}: loss={1 / (i + 1):.3f}" for i in range(30)) + \
    "\nRuntimeError: CUDA out of memory"


@pytest.fixture(autouse=True)
def _no_notify_env(monkeypatch):
    for name in ("NOTIFY_SMTP_SERVER", "NOTIFY_SMTP_PORT", "NOTIFY_EMAIL_USERNAME",
                 "NOTIFY_EMAIL_PASSWORD", "NOTIFY_FROM_ADDR", "NOTIFY_TO_ADDR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sink():
    with JsonSink() as server:
        yield server


OOM = Failure(FailureKind.OOM, "exit code 1, out of memory: RuntimeError: CUDA out of memory")
CRASH_CELLS = {"TrainingCheck": "Crash", "Node": "10.0.0.7", "Error": OOM.text(),
               "LogFile": "runs/m3/attempt-2/run.log"}


def change(old, new, cells=None, *, report=True, job_id="m3") -> StatusChanged:
    """A status change as the lifecycle core hands it to observers."""
    now = time.time()
    failed = new in (S.CRASH, S.STOPPED)
    rep = AttemptReport(job_id, 2, exit_code=1 if failed else 0, started=now - 65, ended=now,
                        log_tail=LOG, log_path="/runs/m3/attempt-2/run.log",
                        metrics={"loss": 0.25, "acc": 0.875}) if report else None
    return StatusChanged(job_id=job_id, old=old, new=new, attempt=2,
                         spec=JobSpec(id=job_id, line=2, name="resnet"),
                         row=frozen_map({"Name": "resnet", **(cells or {})}),
                         failure=OOM if new is S.CRASH else None, report=rep,
                         wandb_run_id="ab12cd34", gpus="0,1", started=now - 65, time=now)


def test_a_crash_arrives_with_id_status_and_the_log_tail(sink):
    notifier = Notifier([sink.url()], queue_name="q")
    notifier(change(S.TRAINING, S.CRASH, CRASH_CELLS))
    assert notifier.close(timeout=10)
    [got] = sink.received
    assert got["title"] == "[q] m3 Crash (oom)", "the failure kind is named"
    assert got["type"] == "failure"
    body = got["message"]
    for text in ("ID: m3 (resnet)", "Status: Crash (attempt 2)", "Failure: oom",
                 "Duration: 0:01:05", "Error: oom: exit code 1, out of memory",
                 "Node: 10.0.0.7   GPUs: 0,1", "W&B run: ab12cd34", "CUDA out of memory",
                 "Log: /runs/m3/attempt-2/run.log", "last 20 log lines", "epoch 29: loss"):
        assert text in body
    assert "epoch 10:" not in body   # only the last 20 lines


def test_done_carries_metric_weights_and_run(sink):
    notifier = Notifier([sink.url()], queue_name="q")
    notifier(change(S.TRAINING, S.DONE,
                    {"TrainingCheck": "Done", "Node": "n1", "BestMetric": "0.91",
                     "WeightFile": "runs/m3/best.pt"}))
    notifier.close(timeout=10)
    [got] = sink.received
    assert got["title"] == "[q] m3 Done" and got["type"] == "success"
    for text in ("Best metric: 0.91", "loss=0.25", "acc=0.875", "Weights: runs/m3/best.pt",
                 "W&B run: ab12cd34"):
        assert text in got["message"]
    assert "log lines" not in got["message"]


def test_started_is_sent_only_when_asked_for(sink):
    default = Notifier([sink.url("/default")])
    opted_in = Notifier([sink.url("/all")], events=["started", "done"])
    for notifier in (default, opted_in):
        notifier(change(S.QUEUED, S.TRAINING, report=False, cells={"Node": "n1"}))
        notifier(change(S.TRAINING, S.DONE, {"Node": "n1"}))
        notifier.close(timeout=10)
    by_path = {}
    for got in sink.received:
        by_path.setdefault(got["path"], []).append(got["title"])
    assert by_path["/default"] == ["m3 Done"]
    assert by_path["/all"] == ["m3 Training", "m3 Done"]


def test_queue_done_counts_statuses_and_names_the_best_run(sink):
    rows = [{"id": "a", "status": "Done"}, {"id": "b", "status": "Done"},
            {"id": "c", "status": "Crash"}, {"id": "d", "status": "Pending"}]
    notifier = Notifier([sink.url()], queue_name="q")
    notifier.queue_done(rows, {"id": "b", "name": "vit", "best_metric": 0.93})
    notifier.close(timeout=10)
    [got] = sink.received
    assert got["title"] == "[q] queue finished: 2 Done, 1 Crash, 1 Pending"
    lines = got["message"].splitlines()
    assert ["Done", "2"] in [ln.split() for ln in lines]
    assert ["Total", "4"] in [ln.split() for ln in lines]
    assert "Crash: c" in lines
    assert ["b", "vit", "0.93"] in [ln.split() for ln in lines]


def test_a_crash_email_through_the_seed_email_section(tmp_path, monkeypatch, caplog):
    """[email] keys from the file, NOTIFY_TO_ADDR from the environment (it wins); the
    second e-mail (apprise throttles it ~5.5 s) never holds up the caller."""
    caplog.set_level(logging.DEBUG, logger="orchestrator")
    with MailSink() as mail:
        path = tmp_path / "orch.ini"
        path.write_text(f"[general]\nqueue_name = q\n[email]\nsmtp_server = 127.0.0.1\n"
                        f"smtp_port = {mail.port}\nusername = me\npassword = S3cr3tPW\n"
                        "from_addr = orch@example.com\nto_addr = file@example.com\n")
        monkeypatch.setenv("NOTIFY_TO_ADDR", "env@example.com")
        notifier = Notifier.from_config(load_config(path))
        t0 = time.monotonic()
        notifier(change(S.TRAINING, S.CRASH, CRASH_CELLS))
        notifier.queue_done([{"id": "m3", "status": "Crash"}])
        assert time.monotonic() - t0 < 0.5
        assert notifier.close(timeout=20)
        assert len(mail.messages) == 2
    assert mail.recipients == [["env@example.com"]] * 2
    assert mail.logins[0] == ("me", "S3cr3tPW")
    crash = mail.text(0)
    assert crash.startswith("[q] m3 Crash")
    assert "epoch 29: loss" in crash and "CUDA out of memory" in crash
    assert "queue finished: 1 Crash" in mail.text(1)
    assert caplog.records, "expected the password-in-file warning"
    assert not [r for r in caplog.records if "S3cr3tPW" in r.getMessage()]


@pytest.mark.parametrize("port, password, server, scheme, mode", [
    ("465", "pw", "smtp.example.com", "mailtos", "ssl"),
    ("587", "pw", "smtp.example.com", "mailtos", "starttls"),
    ("", "pw", "smtp.example.com", "mailtos", "starttls"),
    ("2525", "pw", "localhost", "mailto", "insecure"),
    ("25", "", "relay.lan", "mailto", "insecure"),
])
def test_email_url_picks_tls_by_port_and_apprise_agrees(port, password, server, scheme, mode):
    env = {"NOTIFY_SMTP_SERVER": server, "NOTIFY_SMTP_PORT": port,
           "NOTIFY_EMAIL_USERNAME": "me@example.com", "NOTIFY_EMAIL_PASSWORD": password,
           "NOTIFY_TO_ADDR": "a@example.com, b@example.com"}
    url = email_url({}, env)
    assert url.startswith(f"{scheme}://")
    plugin = apprise.Apprise.instantiate(url)
    assert plugin is not None, url
    assert plugin.secure_mode == mode
    assert plugin.smtp_host == server
    assert plugin.port == int(port or 587)
    assert [t[1] for t in plugin.targets] == ["a@example.com", "b@example.com"]
    assert plugin.password == (password or None)


def test_an_unreachable_url_neither_raises_nor_blocks_and_warns_once(caplog):
    caplog.set_level(logging.DEBUG, logger="orchestrator")
    with closed_port() as port:
        notifier = Notifier([f"json://user:T0kenXYZ@127.0.0.1:{port}/hook?k=T0kenXYZ"],
                            timeout=2)
        t0 = time.monotonic()
        for _ in range(3):
            notifier(change(S.TRAINING, S.CRASH, CRASH_CELLS))
        assert time.monotonic() - t0 < 0.5
        assert notifier.close(timeout=10)
    warnings = [r for r in caplog.records
                if r.name == "orchestrator.observers.notify" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"127.0.0.1:{port}" in warnings[0].getMessage()
    assert not [r for r in caplog.records if "T0kenXYZ" in r.getMessage()]


def test_close_returns_within_its_timeout_when_a_url_is_stuck():
    with silent_port() as port:
        notifier = Notifier([f"json://127.0.0.1:{port}/hook"], timeout=5)
        t0 = time.monotonic()
        notifier(change(S.TRAINING, S.CRASH, CRASH_CELLS))
        notifier(change(S.TRAINING, S.DONE, {}))
        assert time.monotonic() - t0 < 0.5     # the caller never waits on the network
        t0 = time.monotonic()
        assert notifier.close(timeout=0.5) is False
        assert time.monotonic() - t0 < 2.0


def test_a_bad_url_is_skipped_without_echoing_it(sink, caplog):
    notifier = Notifier(["tgram://S3cretBotToken/", sink.url()])
    notifier(change(S.TRAINING, S.DONE, {}))
    notifier.close(timeout=10)
    assert len(sink.received) == 1
    [said] = [r for r in caplog.records if "tgram" in r.getMessage()]   # ours, not apprise's
    assert said.name == "orchestrator.observers.notify" and "tgram://…" in said.getMessage()
    assert "S3cretBotToken" not in caplog.text


def test_without_urls_the_notifier_is_disabled():
    for notifier in (Notifier(), Notifier.from_config(Config())):
        assert not notifier.enabled
        notifier(change(S.TRAINING, S.CRASH, CRASH_CELLS))
        notifier.queue_done([])
        assert notifier.close(timeout=1)


def test_from_config_reads_the_notify_section(tmp_path, sink):
    path = tmp_path / "orch.yaml"
    path.write_text("notify:\n"
                    f"  urls: \"{sink.url('/a')}, {sink.url('/b')}\\n{sink.url('/c')}\"\n"
                    "  events: crash, started\n  sound: true\n  timeout: 3\n")
    notifier = Notifier.from_config(load_config(path), queue_name="q")
    assert notifier.events == {"crash", "started"} and notifier.bell
    assert notifier.timeout == 3.0 and notifier.queue_name == "q"
    notifier(change(S.TRAINING, S.DONE, {}))  # not among the events
    notifier(change(S.TRAINING, S.CRASH, CRASH_CELLS))
    notifier.close(timeout=10)
    assert sorted(g["path"] for g in sink.received) == ["/a", "/b", "/c"]


@pytest.mark.parametrize("section, fix", [
    ("[notify]\nevents = crash, finished\n", "use some of"),
    ("[notify]\nurls = json://x\nsound = loud\n", "true or false"),
    ("[notify]\nwebhook = json://x\n", "valid keys in [notify]"),
    ("[email]\nsmtp_server = smtp.x.org\nsmtp_port = five\nto_addr = a@x.org\n", "port"),
])
def test_config_mistakes_say_what_and_how_to_fix(tmp_path, section, fix):
    path = tmp_path / "orch.ini"
    path.write_text(section)
    with pytest.raises(ConfigError) as info:
        Notifier.from_config(load_config(path))
    assert fix in str(info.value) and str(path) in str(info.value)


def test_the_bell_rings_on_a_crash_only(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    notifier = Notifier(bell=True)
    notifier(change(S.TRAINING, S.DONE, {}))
    assert terminal.getvalue() == ""
    notifier(change(S.TRAINING, S.CRASH, CRASH_CELLS))
    assert terminal.getvalue() == "\a"


def test_a_retried_failure_and_a_row_first_seen_send_nothing(sink):
    notifier = Notifier([sink.url()], queue_name="q", events=["started", "done", "crash"])
    notifier(change(S.TRAINING, S.PENDING, {"Error": "oom: … retry 1/3 with GPUs=1"}))
    notifier(change(None, S.DONE, {"TrainingCheck": "Done"}, report=False))
    notifier(change(S.PENDING, S.TRAINING, report=False))   # a restarted driver re-attached
    notifier.close(timeout=10)
    assert sink.received == []


def test_an_event_from_a_change_with_nothing_more_has_what_is_known():
    bare = StatusChanged(job_id="x7", old=S.TRAINING, new=S.STOPPED, attempt=0, spec=None,
                         row=frozen_map())
    event = JobEvent.from_change(bare, queue="q")
    assert (event.job_id, event.status, event.kind, event.duration_s) == (
        "x7", "Stopped", "stopped", None)
    assert event.title() == "[q] x7 Stopped"
    assert event.body() == "ID: x7\nStatus: Stopped"


def test_urls_split_and_redact():
    assert split_urls("json://a/x?to=a@x,b@y, mailto://h\n tgram://t/c,") == [
        "json://a/x?to=a@x,b@y", "mailto://h", "tgram://t/c"]
    assert redact_url("json://u:pw@host:8080/path/TOKEN?k=v") == "json://host:8080/…"
    assert redact_url("mailtos://smtp.x.org") == "mailtos://smtp.x.org"

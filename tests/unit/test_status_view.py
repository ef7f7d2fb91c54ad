"""``orchestrator status``, its ``--json`` and the end-of-run summary: one row view, read
from a queue on disk (CSV, run record, metrics lines), shown at 80 and 120 columns."""

from __future__ import annotations

import json
import time

import pytest
from rich.console import Console

from orchestrator.store.config import load_config
from orchestrator.store.paths import DriverLock, queue_paths
from orchestrator.store.queue_file import QueueFile
from orchestrator.store.record import RunRecord
from orchestrator.views.table import QueueSource, render_status
from tests.helpers import write_csv

HEADER = ["ID", "Name", "TrainingCommand", "GPUs", "Priority", "PretrainedModelId",
          "TrainingCheck", "Attempts", "Node", "BestMetric", "WandbRunID", "LogFile", "Error"]
CRASH = ("oom: CUDA out of memory after 2 attempts (on_oom = fail: set OnOOM = more_gpu to "
         "retry with more GPUs) (log: runs/crashed-resnet/attempt-2/run.log)")
INVALID = ("invalid: TrainingCheck='Hodl' is not a word the orchestrator knows — write one "
           "of: blank (run it), Hold (do not start it), Rerun (run a finished row again)")


@pytest.fixture
def queue(tmp_path):
    """A running row with progress, a Done row, a Crash (oom), an Invalid word, a row
    waiting on its parent, and one waiting for a GPU."""
    runs = tmp_path / "runs"
    record = RunRecord(runs / "registry.db")
    for job_id, status, attempt, lines in (
            ("train-long-name-01", "Training", 1,
             [{"epoch": 3, "epochs": 10, "val_loss": 0.4321}]),
            ("done", "Done", 1, [{"step": 200, "val_loss": 0.125}]),
            ("crashed-resnet", "Crash", 2, [])):
        run_dir = runs / job_id / f"attempt-{attempt}"
        run_dir.mkdir(parents=True)
        (run_dir / "run.log").write_text("…\n")
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        record.begin_attempt("queue", job_id, attempt, status="Queued",
                             log_path=str(run_dir / "run.log"))
        record.update_attempt("queue", job_id, attempt, status=status, node="node-a",
                              started=time.time() - 125, gpus="0,1" if job_id == "done" else "1",
                              ended=time.time() - 5 if status != "Training" else None,
                              **({"failure": "oom"} if status == "Crash" else {}))
    record.close()
    csv_path = write_csv(tmp_path / "queue.csv", HEADER, [
        ["train-long-name-01", "a long descriptive run name", "python t.py", "0.5", "3", "",
         "Training", "1", "node-a", "", "wb-1", "", ""],
        ["done", "base", "python t.py", "2", "", "", "Done", "1", "node-a", "0.125", "wb-2", "",
         ""],
        ["crashed-resnet", "resnet", "python t.py", "1", "", "", "Crash", "2", "node-a", "",
         "wb-3", "", CRASH],
        ["typo", "typo", "python t.py", "", "", "", "Hodl", "", "", "", "", "", INVALID],
        ["child", "finetune", "python t.py", "0.25", "-1", "done", "", "", "", "", "", "", ""],
        ["gpu-wait", "big", "python t.py", "8", "", "", "", "", "", "", "", "", ""],
    ])
    config = load_config(None, metric="val_loss", default_gpus="1")
    paths = queue_paths(csv_path, config)
    source = QueueSource(paths, config)
    yield source
    source.close()


def shown(source, width) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(render_status(source.rows(), console.width, title="queue"))
    return console.export_text()


def test_json_has_numbers_as_numbers_and_what_each_row_asked_for(queue):
    rows = {r["id"]: r for r in json.loads(json.dumps([v.to_json() for v in queue.rows()]))}
    run = rows["train-long-name-01"]
    assert (run["gpus"], run["gpu_ids"], run["priority"], run["attempts"]) == (0.5, [1], 3, 1)
    eta = run["progress"].pop("eta_s")
    assert run["progress"] == {"unit": "epoch", "done": 3, "total": 10}
    assert eta == pytest.approx(run["elapsed_s"] * 7 / 3, abs=1), "the time left at its pace"
    assert run["metric"] == {"name": "val_loss", "value": 0.4321}
    assert isinstance(run["elapsed_s"], float) and run["elapsed_s"] >= 120
    assert (rows["done"]["best_metric"], rows["done"]["gpu_ids"]) == (0.125, [0, 1])
    assert rows["crashed-resnet"]["failure"] == "oom" and rows["crashed-resnet"]["attempts"] == 2
    assert (rows["typo"]["status"], rows["typo"]["failure"]) == ("Invalid", "invalid")
    assert (rows["child"]["parent"], rows["child"]["priority"], rows["child"]["gpus"]) == \
        ("done", -1, 0.25)
    assert rows["gpu-wait"]["gpus"] == 8.0 and rows["typo"]["gpus"] == 1.0, "default_gpus"
    assert rows["gpu-wait"]["attempts"] is None and rows["gpu-wait"]["best_metric"] is None


def test_the_failure_kind_is_the_records_not_a_reading_of_the_error_text(queue):
    """A user who rewrites a Crash row's Error cell (or a message that happens to start
    with another kind's word) does not change why the attempt failed."""
    QueueFile(queue.paths.csv).update({"crashed-resnet": {"Error": "exit: I looked at it"}})
    rows = {r.id: r for r in queue.rows()}
    assert rows["crashed-resnet"].failure == "oom"
    assert rows["done"].failure is None and rows["child"].failure is None


@pytest.mark.parametrize("width", [80, 120])
def test_every_id_status_and_reason_is_whole_at_80_and_120_columns(queue, width):
    text = shown(queue, width)
    assert max(len(line) for line in text.splitlines()) <= width
    for job_id, status in (("train-long-name-01", "Training"), ("done", "Done"),
                           ("crashed-resnet", "Crash"), ("typo", "Invalid"),
                           ("child", "Pending"), ("gpu-wait", "Pending")):
        line = next(x for x in text.splitlines() if x.startswith(f"{job_id} "))
        assert f" {status} " in line, line
    flat = " ".join(text.split())
    assert f"crashed-resnet: {CRASH}" in flat, "a long error on lines of its own, whole"
    assert f"typo: {INVALID}" in flat
    assert "done:" not in flat, "a Done row has no reason to give"
    assert "0.5@1" in text and "2@0,1" in text, "asked GPUs, and the ids held"
    assert "0.4321" in text, "the running row's latest metric"


def test_at_120_columns_try_time_progress_and_best_are_readable(queue):
    text = shown(queue, 120)
    header = next(x for x in text.splitlines() if "Status" in x)
    for label in ("GPUs", "Time", "Progress", "Metric", "Best", "Try"):
        assert f" {label} " in header, label
    running = next(x for x in text.splitlines() if x.startswith("train-long-name-01 "))
    assert "epoch 3/10" in running and "2:0" in running   # ~2:05 elapsed
    done = next(x for x in text.splitlines() if x.startswith("done "))
    assert "0.125" in done


def test_at_80_columns_the_least_needed_columns_go_first(queue):
    header = next(x for x in shown(queue, 80).splitlines() if "Status" in x)
    assert "W&B run" not in header and "Node" not in header
    assert " GPUs " in header and " Metric " in header


def test_a_running_drivers_reasons_for_pending_rows_are_shown(queue):
    paths = queue.paths
    paths.waiting.write_text(json.dumps({"child": "waits for its parent done (Training)",
                                         "gpu-wait": "waits for 8 GPU to free up"}))
    assert {r.id: r.waiting for r in queue.rows()}["child"] == "", \
        "no driver holds the queue: its reasons are stale"
    with DriverLock(paths) as lock:
        lock.publish("127.0.0.1:0", "orchestrator")
        rows = {r.id: r for r in queue.rows()}
        text = " ".join(shown(queue, 120).split())
    assert rows["child"].waiting == "waits for its parent done (Training)"
    assert rows["done"].waiting == "", "only pending rows wait"
    assert "child: waits for its parent done (Training)" in text
    assert "gpu-wait: waits for 8 GPU to free up" in text


def test_cells_that_a_terminal_would_run_are_shown_literally(tmp_path):
    """A Name with an escape sequence (set the window title, clear the screen) or rich
    markup reaches the terminal as text, in the table and in the reasons below it."""
    from orchestrator.views.table import status_rows

    rows = [(2, {"ID": "a", "Name": "\x1b]0;HACKED\x07\x1b[2J x", "TrainingCommand": "t",
                 "TrainingCheck": "Crash", "Error": "exit: [/] [bold]boom\x1b[31m"})]
    console = Console(width=120, record=True, color_system=None, force_terminal=True)
    console.print(render_status(status_rows(rows, {}), 120))
    out = console.export_text(styles=False)
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;HACKED\\x07" in out
    assert "exit: [/] [bold]boom\\x1b[31m" in out, "markup shown as it was written"


def test_status_reads_a_cp949_queue_as_named_then_as_the_driver_did(tmp_path, capsys):
    """Without --encoding a Korean-Excel CSV is refused with the flag to give; with it the
    rows are shown; the views then read it as the last driver did, unasked."""
    from orchestrator.cli.main import main
    from orchestrator.store.paths import record_run_config

    csv_path = tmp_path / "queue.csv"
    csv_path.write_bytes("ID,Name,TrainingCommand\r\nm1,한글 이름,python t.py\r\n".encode("cp949"))
    assert main(["status", str(csv_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {csv_path} line 2: the file is not UTF-8 text" in err
    assert "--encoding cp949" in err
    assert main(["status", str(csv_path), "--encoding", "cp949", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["name"] == "한글 이름"
    config = load_config(None, csv_encoding="cp949")
    record_run_config(queue_paths(csv_path, config), config)   # what `orchestrator run` keeps
    assert main(["status", str(csv_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["name"] == "한글 이름"


def test_a_waiting_row_holds_no_gpu_and_a_bad_cell_is_shown_as_written(tmp_path):
    """A row stopped back to Pending kept '1@0' and its node; a GPUs cell 'abc' showed
    'auto'; the TUI said 'held 0' for GPU 0."""
    from orchestrator.views.tui import details_text

    runs = tmp_path / "runs"
    record = RunRecord(runs / "registry.db")
    for job_id in ("again", "ran"):
        record.begin_attempt("queue", job_id, 1, status="Queued")
        record.update_attempt("queue", job_id, 1, status="Stopped" if job_id == "again"
                              else "Done", node="node-a", gpus="0", started=time.time() - 9,
                              ended=time.time() - 1)
    record.close()
    csv_path = write_csv(tmp_path / "queue.csv", HEADER, [
        ["again", "a", "python t.py", "1", "", "", "", "1", "node-a", "", "", "", ""],
        ["ran", "r", "python t.py", "1", "", "", "Done", "1", "node-a", "", "", "", ""],
        ["bad", "b", "python t.py", "abc", "", "", "", "", "", "", "", "", ""]])
    config = load_config(None)
    source = QueueSource(queue_paths(csv_path, config), config)
    views = {v.id: v for v in source.rows()}
    source.close()
    assert (views["again"].cells["gpus"], views["again"].cells["node"]) == ("1", "")
    assert (views["ran"].cells["gpus"], views["ran"].cells["node"]) == ("1@0", "node-a")
    assert views["bad"].cells["gpus"] == "abc"
    assert "GPUs asked 1, holds GPU 0" in details_text(views["ran"])
    assert "GPUs asked 1, holds none" in details_text(views["again"])
    assert "GPUs asked abc" in details_text(views["bad"])


def test_a_training_row_shows_its_best_so_far_beside_its_latest(tmp_path):
    """Best stayed empty while Training though Metric showed: BestMetric is written at
    the end; until then the best of the lines so far (lowest for a loss)."""
    run_dir = tmp_path / "runs" / "t" / "attempt-1"
    run_dir.mkdir(parents=True)
    lines = run_dir / "metrics.jsonl"
    lines.write_text("".join(json.dumps({"epoch": i, "val_loss": v}) + "\n"
                             for i, v in enumerate((0.5, 0.3, 0.4))))
    csv_path = write_csv(tmp_path / "queue.csv", HEADER, [
        ["t", "t", "python t.py", "1", "", "", "Training", "1", "", "", "",
         "runs/t/attempt-1/run.log", ""]])
    config = load_config(None, metric="val_loss")
    source = QueueSource(queue_paths(csv_path, config), config)
    [view] = source.rows()
    assert (view.cells["metric"], view.cells["best"]) == ("0.4", "0.3")
    with lines.open("a") as f:   # read on from where it stopped, a half line waits
        f.write(json.dumps({"epoch": 3, "val_loss": 0.2}) + "\n" + '{"epoch": 4, "val_lo')
    [view] = source.rows()
    assert view.cells["best"] == "0.2"
    source.close()


@pytest.mark.parametrize("width", [80, 120])
def test_a_pipe_gets_the_same_text_as_the_terminal(queue, width):
    """To a pipe the table is written as text at once; the words and layout are the
    terminal's, styles aside."""
    import io

    from orchestrator.views.table import print_status

    views = queue.rows()
    piped = Console(file=io.StringIO(), width=width)
    assert not piped.is_terminal
    print_status(piped, views, title="queue")
    terminal = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    print_status(terminal, views, title="queue")
    assert piped.file.getvalue() == terminal.file.getvalue()
    assert "crashed-resnet" in piped.file.getvalue()


@pytest.mark.parametrize("cell,priority", [("1.5", 1.5), ("-2", -2), ("", 0), ("high", 0)])
def test_a_fractional_priority_is_shown_as_written(cell, priority):
    from orchestrator.views.table import status_rows

    (view,) = status_rows([(2, {"ID": "a", "TrainingCommand": "x", "Priority": cell})], {})
    assert view.priority == priority and view.to_json()["priority"] == priority

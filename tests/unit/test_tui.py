"""The TUI, driven headless with textual's ``run_test()`` on a queue on disk (no Ray)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from orchestrator.driver.control import stop_rows_isolated
from orchestrator.store.config import load_config
from orchestrator.store.paths import queue_paths
from orchestrator.store.record import RunRecord
from orchestrator.views.table import metric_text, progress_text
from orchestrator.views.tui import LogScreen, QueueApp
from tests.helpers import read_rows, write_csv

HEADER = ["ID", "Name", "TrainingCommand", "TrainingCheck", "Attempts", "Node", "BestMetric",
          "WandbRunID", "LogFile"]


def _attempt(record: RunRecord, runs: Path, job_id: str, status: str, lines: list[dict],
             log: str) -> None:
    run_dir = runs / job_id / "attempt-1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.log").write_text(log, encoding="utf-8")
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    record.begin_attempt("queue", job_id, 1, status="Queued", log_path=str(run_dir / "run.log"))
    record.update_attempt("queue", job_id, 1, status=status, started=time.time() - 65,
                          node="node-a", gpus=[0])


@pytest.fixture
def queue(tmp_path):
    """m1 Training (epoch 3/10), m2 Done (step 200), p1 not started, 학습 a Korean name."""
    runs = tmp_path / "runs"
    record = RunRecord(runs / "registry.db")
    _attempt(record, runs, "m1", "Training",
             [{"epoch": 2, "epochs": 10, "val_acc": 0.5}, {"epoch": 3, "epochs": 10,
                                                           "val_acc": 0.625}],
             "starting m1\nepoch 3 done\n")
    _attempt(record, runs, "m2", "Done", [{"step": 200, "loss": 0.125}], "m2 finished\n")
    record.close()
    csv_path = write_csv(tmp_path / "queue.csv", HEADER, [
        ["m1", "resnet", "python train.py", "Training", "1", "node-a", "0.625", "wb-m1", ""],
        ["m2", "학습-모델", "python train.py", "Done", "1", "node-a", "0.9", "wb-m2", ""],
        ["p1", "pending-one", "python train.py", "", "", "", "", "", ""],
    ])
    config = load_config(None, metric="val_acc")
    return queue_paths(csv_path, config), config


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def _column(app: QueueApp, key: str) -> list[str]:
    return [str(c) for c in app.table.get_column(key)]


async def _wait(pilot, predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting in the app")
        await pilot.pause(0.05)


def test_table_shows_rows_statuses_progress(queue):
    paths, config = queue

    async def main():
        app = QueueApp(paths, config)
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.pause()
            assert _column(app, "id") == ["m1", "m2", "p1"]
            assert _column(app, "status") == ["Training", "Done", "Pending"]
            progress = _column(app, "progress")
            # 65 s for 3 of 10 epochs: about 2:31 left
            assert re.fullmatch(r"epoch 3/10 ~2:3\d", progress[0]), progress
            assert progress[1:] == ["step 200", ""], "a finished row has no time left"
            assert _column(app, "metric")[0] == "0.625"
            assert _column(app, "wandb") == ["wb-m1", "wb-m2", ""]
            summary = str(app.query_one("#summary").render())
            assert "no driver" in summary and "Training 1" in summary
            assert app.selected_key() == "m1"
            await pilot.press("down")
            assert app.selected_key() == "m2"
            await pilot.press("q")
        assert app.return_code in (0, None)
        assert not app.is_running

    _run(main())


def test_ctrl_c_leaves_the_view_as_q_does(queue):
    paths, config = queue

    async def main():
        app = QueueApp(paths, config)
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.pause()
            await pilot.press("ctrl+c")
            await pilot.pause(0.2)
            assert not app.is_running, "Ctrl-C leaves, not 'press ctrl+q to quit'"

    _run(main())


def test_refresh_updates_cells_in_place_and_keeps_cursor(queue):
    paths, config = queue

    async def main():
        app = QueueApp(paths, config, refresh_s=60)
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.pause()
            await pilot.press("down")
            metrics = paths.state_dir / "m2" / "attempt-1" / "metrics.jsonl"
            with open(metrics, "a") as f:
                f.write(json.dumps({"step": 300, "total_steps": 1000, "loss": 0.1}) + "\n")
            await pilot.press("r")
            assert _column(app, "progress")[1] == "step 300/1000"
            assert app.selected_key() == "m2"

    _run(main())


def test_filter_keeps_matching_rows_and_escape_clears(queue):
    paths, config = queue

    async def main():
        app = QueueApp(paths, config)
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.pause()
            await pilot.press("slash", "d", "o", "n", "e", "enter")
            assert _column(app, "id") == ["m2"]
            await pilot.press("slash", "학", "enter")
            assert _column(app, "id") == ["m2"]
            await pilot.press("slash", "escape")
            assert _column(app, "id") == ["m1", "m2", "p1"]
            await pilot.press("slash", "p", "1", "enter", "escape")  # Escape in the table too
            assert _column(app, "id") == ["m1", "m2", "p1"]

    _run(main())


def test_log_view_follows_appended_lines(queue):
    paths, config = queue

    async def main():
        app = QueueApp(paths, config, refresh_s=0.2)  # refreshes go on under the log screen
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            await pilot.press("l")
            screen = app.screen
            assert isinstance(screen, LogScreen)
            log = screen.query_one("#log")
            await _wait(pilot, lambda: "epoch 3 done" in log.lines)
            assert "starting m1" in log.lines
            with open(paths.state_dir / "m1" / "attempt-1" / "run.log", "a") as f:
                f.write("epoch 4 done\n")
            started = time.monotonic()
            await _wait(pilot, lambda: "epoch 4 done" in log.lines, timeout=3)
            print(f"appended line shown after {time.monotonic() - started:.2f}s")
            await pilot.press("escape")
            assert not isinstance(app.screen, LogScreen)
            await pilot.press("enter")  # Enter opens it too
            assert isinstance(app.screen, LogScreen)
            await pilot.press("q")       # q goes back, not out
            assert app.is_running and not isinstance(app.screen, LogScreen)
            await pilot.press("down", "down", "l")  # p1 never ran: says so
            log = app.screen.query_one("#log")
            await _wait(pilot, lambda: any("no log yet" in line for line in log.lines))

    _run(main())


def test_stop_yes_marks_not_started_row_stopped(queue):
    paths, config = queue

    async def main():
        app = QueueApp(paths, config, stop=lambda ids: stop_rows_isolated(paths, config, ids))
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.pause()
            await pilot.press("down", "down")
            assert app.selected_key() == "p1"
            await pilot.press("s", "y")
            await _wait(pilot, lambda: read_rows(paths.csv)["p1"]["TrainingCheck"] == "Stopped")
            await _wait(pilot, lambda: _column(app, "status")[2] == "Stopped")

    _run(main())
    assert read_rows(paths.csv)["m1"]["TrainingCheck"] == "Training"


def test_stopping_is_said_until_the_row_has_stopped_then_how_it_ended(queue):
    """The driver answers "stopping (SIGTERM, …)" for a running row; that note used to
    stay 6 s whatever happened. Now it stays until the row has stopped, then says so."""
    paths, config = queue
    asked = []

    def stop(ids):   # the running driver's answer; it writes Stopped a moment later
        asked.extend(ids)
        return {"m1": "stopping (SIGTERM, then SIGKILL after the grace period)"}

    def shown(app):
        return [n.message for n in app._notifications]

    async def main():
        app = QueueApp(paths, config, refresh_s=0.2, stop=stop)
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.pause()
            assert app.selected_key() == "m1"
            await pilot.press("s", "y")
            await _wait(pilot, lambda: any("m1: stopping (SIGTERM" in m for m in shown(app)))
            await pilot.pause(0.6)   # refreshes while it still runs: still said
            assert any("stopping (SIGTERM" in m for m in shown(app))
            rows = read_rows(paths.csv)
            rows["m1"]["TrainingCheck"] = "Stopped"
            write_csv(paths.csv, list(rows["m1"]), [list(r.values()) for r in rows.values()])
            await _wait(pilot, lambda: "m1: Stopped" in shown(app))
            assert not any("stopping (SIGTERM" in m for m in shown(app))

    _run(main())
    assert asked == ["m1"]


def test_stop_no_changes_nothing(queue):
    paths, config = queue
    before = paths.csv.read_bytes()

    async def main():
        app = QueueApp(paths, config, refresh_s=0.2,
                       stop=lambda ids: stop_rows_isolated(paths, config, ids))
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.pause()
            await pilot.press("down", "down", "s")
            assert app.screen.__class__.__name__ == "ConfirmScreen"
            await pilot.pause(0.5)  # refreshes under the dialog
            await pilot.press("n")
            assert app.screen.__class__.__name__ != "ConfirmScreen"
            await pilot.pause(0.3)

    _run(main())
    assert paths.csv.read_bytes() == before


def test_stop_is_not_offered_for_a_finished_row(queue):
    paths, config = queue
    asked = []

    async def main():
        app = QueueApp(paths, config, stop=asked.append)
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.pause()
            await pilot.press("down")
            assert app.selected_key() == "m2"   # Done
            await pilot.press("s")
            await pilot.pause()
            assert app.screen.__class__.__name__ != "ConfirmScreen"
            await pilot.press("y")

    _run(main())
    assert asked == []


def test_narrow_terminal_keeps_id_and_status(queue):
    paths, config = queue

    async def main():
        app = QueueApp(paths, config)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            keys = [c.key.value for c in app.table.columns.values()]
            assert "id" in keys and "status" in keys
            assert "wandb" not in keys and "node" not in keys
            assert _column(app, "status") == ["Training", "Done", "Pending"]
            await pilot.resize_terminal(200, 30)
            for _ in range(50):  # the re-layout may take a few refreshes under load
                await pilot.pause(0.1)
                if "wandb" in [c.key.value for c in app.table.columns.values()]:
                    break
            assert "wandb" in [c.key.value for c in app.table.columns.values()]

    _run(main())


def test_thousand_rows_render(tmp_path):
    rows = [[f"j{i:04d}", f"name-{i}", "python t.py", ["", "Done", "Crash"][i % 3], "", "", "",
             "", ""] for i in range(1000)]
    csv_path = write_csv(tmp_path / "big.csv", HEADER, rows)
    config = load_config(None)
    paths = queue_paths(csv_path, config)

    async def main():
        app = QueueApp(paths, config)
        started = time.perf_counter()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            first = time.perf_counter() - started
            assert app.table.row_count == 1000
            started = time.perf_counter()
            app.reload()
            await pilot.pause()
            again = time.perf_counter() - started
            print(f"1000 rows: first render {first:.2f}s, refresh {again:.3f}s")

    _run(main())


def test_progress_and_metric_text():
    assert progress_text({"epoch": 3}) == "epoch 3"
    assert progress_text({"epoch": 3, "epochs": 10}) == "epoch 3/10"
    assert progress_text({"epoch": 3, "epochs": 10}, elapsed=300) == "epoch 3/10 ~11:40"
    assert progress_text({"epoch": 0, "epochs": 10}, elapsed=300) == "epoch 0/10"
    assert progress_text({"epoch": 10, "epochs": 10}, elapsed=300) == "epoch 10/10"
    assert progress_text({"step": 5, "total_steps": 50}) == "step 5/50"
    assert progress_text({"loss": 1.0}) == ""
    assert metric_text({"step": 1, "loss": 0.123456}, "") == "loss 0.1235"
    assert metric_text({"val_acc": 0.5}, "val_acc") == "0.5"
    assert metric_text({"loss": 1.0}, "val_acc") == ""


def test_header_shows_busy_gpus_per_node_and_a_crash_rings_when_asked(tmp_path):
    from orchestrator.store.record import RunRecord

    csv_path = write_csv(tmp_path / "q.csv", HEADER, [
        ["r1", "a", "python t.py", "Training", "1", "vm/aaaa", "", "w1", ""],
        ["r2", "b", "python t.py", "", "", "", "", "", ""]])
    config = load_config(None).replace(notify_sound=True)
    paths = queue_paths(csv_path, config)
    record = RunRecord(paths.registry)
    record.begin_attempt(paths.name, "r1", 1, status="Training", gpus="0,1", node="vm/aaaa")
    record.close()

    async def main():
        app = QueueApp(paths, config)
        rang = []
        app.bell = lambda: rang.append(1)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            assert "busy GPUs: vm/aaaa [0,1]" in app.summary_text()
            rows = (csv_path.read_text().replace("r2,b,python t.py,,", "r2,b,python t.py,Crash,"))
            csv_path.write_text(rows)
            app.reload()
            await pilot.pause()
        return rang

    assert _run(main()) == [1]


@pytest.mark.parametrize("local,keys,answer", [
    (True, ["enter"], "cancel"),                    # Cancel has the focus
    (True, ["tab", "enter"], "stop"),               # Tab wraps round to Stop
    (True, ["s"], "stop"), (True, ["k", "c"], "cancel"),   # no keeping jobs on our own Ray
    (False, ["k"], "keep"), (False, ["shift+tab", "shift+tab", "enter"], "keep"),
])
def test_the_quit_dialog_shows_its_choices_and_answers_keys_and_enter(local, keys, answer):
    from textual.app import App
    from textual.widgets import Button

    from orchestrator.driver.ui import QuitScreen

    answers = []

    class Host(App):
        def on_mount(self):
            self.push_screen(QuitScreen(2, local), answers.append)

    async def main():
        app = Host()
        async with app.run_test(size=(100, 24)) as pilot:
            await pilot.pause()
            labels = [str(b.label) for b in app.screen.query(Button)]
            assert labels == ([] if local else ["Keep running, quit (k)"]) + [
                "Stop jobs, quit (s)", "Cancel (c)"]
            await pilot.press(*keys)
            await pilot.pause()

    _run(main())
    assert answers == [answer]


def test_details_hold_rerun_priority_order_and_help(queue):
    paths, config = queue
    rows = lambda: read_rows(paths.csv)  # noqa: E731

    async def main():
        app = QueueApp(paths, config, refresh_s=0.2)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.pause()
            assert "command: python train.py" in str(app.details.render())
            assert "attempt 1" in str(app.details.render())
            await pilot.press("h")                          # m1 Training: not holdable
            await pilot.pause(0.3)
            assert rows()["m1"]["TrainingCheck"] == "Training"
            await pilot.press("down", "R")                  # m2 Done: run it again
            await _wait(pilot, lambda: rows()["m2"]["TrainingCheck"] == "Rerun")
            await pilot.press("down", "h")                  # p1 pending: hold it
            await _wait(pilot, lambda: rows()["p1"]["TrainingCheck"] == "Hold")
            await _wait(pilot, lambda: _column(app, "status")[2] == "Hold")
            await pilot.press("R")                          # a held row is not finished
            await pilot.press("plus", "plus")
            await _wait(pilot, lambda: rows()["p1"].get("Priority") == "2")
            await pilot.press("h")                          # release it
            await _wait(pilot, lambda: rows()["p1"]["TrainingCheck"] == "")
            await pilot.press("o")                          # running first
            await _wait(pilot, lambda: _column(app, "id")[0] == "m1")
            await pilot.press("question_mark")
            await pilot.pause()
            assert app.screen.__class__.__name__ == "HelpScreen"

    _run(main())
    assert rows()["m2"]["TrainingCheck"] == "Rerun", "R on a held row changed nothing"


def test_the_header_says_what_nvml_says_of_the_gpus(queue):
    from orchestrator.infra.nvml import gpu_usage
    from orchestrator.views.tui import gpu_use_text

    assert gpu_use_text([{"index": 0, "util": 87, "mem_used_gib": 10.24,
                          "mem_total_gib": 80.0}]) == "GPU use: 0: 87% 10.2/80 GiB"
    paths, config = queue
    app = QueueApp(paths, config)
    usage = gpu_usage()   # this machine, for real: None where no NVIDIA driver answers
    assert gpu_use_text(usage) in app.summary_text()
    if usage is None:
        assert "GPU use: n/a" in app.summary_text()


def test_at_120_columns_a_running_row_shows_progress_metric_and_a_pending_one_why(queue):
    paths, config = queue
    paths.state_dir.mkdir(parents=True, exist_ok=True)

    async def main():
        app = QueueApp(paths, config)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            keys = [c.key.value for c in app.table.columns.values()]
            for key in ("id", "name", "status", "gpus", "progress", "metric", "why"):
                assert key in keys, (key, keys)
            assert _column(app, "metric")[0] == "0.625"
            assert _column(app, "gpus")[0] == "auto@0", "no GPUs cell: default_gpus = auto"
            assert _column(app, "why")[2] == "", "no driver: no reason published"

    _run(main())

"""The driver's loop under every order of answers a pool can give: no race ends it.

A runner's answers can arrive early (an end before its start), late (about an attempt
the row has left), twice, or never (a start that is never reported); stop requests and
the user's edits land between them. ``ChaosPool`` plays all of these from a seed, and
each run checks what a user relies on: the driver returns, every launched attempt ends
exactly once, nothing runs twice at once, a Done row is never run again unasked, the
file agrees with the driver, and no row was failed by the driver itself.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest

from orchestrator.core import AttemptReport, RowStatus
from orchestrator.driver.loop import Scheduler
from orchestrator.execution.pool import Ended, Lost, Runner, Started
from orchestrator.store.config import load_config
from orchestrator.store.paths import queue_paths
from orchestrator.store.queue_file import QueueFile
from orchestrator.store.record import RunRecord
from tests.fake_pool import FakePool
from tests.helpers import read_rows, write_csv

S = RowStatus
HEADER = ["ID", "Name", "TrainingCommand", "TrainingCheck", "PretrainedModelId", "GPUs",
          "Retries"]
SEEDS = int(os.environ.get("ORCH_INTERLEAVING_SEEDS", "300"))


class ChaosPool(FakePool):
    """A pool whose answers come in a seeded random order, duplicated, stale or missing."""

    def __init__(self, rng: random.Random, csv_path, gpus: float):
        super().__init__(gpus=gpus, cpus=64)
        self.rng, self.csv_path = rng, csv_path
        self.loop: Scheduler | None = None
        self.pending: list = []                  # answers not yet handed to the loop
        self.live: dict[str, tuple[int, Runner]] = {}   # job id -> its running attempt
        self.overlaps: list[str] = []            # a row started while it already ran
        self.ends: dict[tuple[str, int], object] = {}   # the end each attempt will report
        self.edits: list[tuple[str, str]] = []   # (job id, word) the "user" wrote
        self.polls = 0

    # --------------------------------------------------------------- attempts
    def start(self, runner: Runner, launch) -> None:
        rng, key = self.rng, (launch.job_id, launch.attempt)
        if launch.job_id in self.live:
            self.overlaps.append(f"{key} while attempt {self.live[launch.job_id][0]} runs")
        runner.job_id, runner.attempt = key
        self.launches.append((launch, runner.shape))
        self.live[launch.job_id] = (launch.attempt, runner)
        begun = AttemptReport(*key, started=time.time(), node="node-chaos",
                              log_path=f"{launch.run_dir}/run.log")
        fate = rng.choices(["ok", "exit", "lost", "unstartable"], [6, 2, 1, 1])[0]
        if fate == "unstartable":   # the runner could not start it: no Started, an end
            end = Ended(*key, begun.replace(error="cannot start: no such file",
                                            ended=time.time()))
        elif fate == "lost":
            end = Lost(*key, "ActorDiedError: the actor died unexpectedly")
        else:
            end = Ended(*key, begun.replace(ended=time.time(), exit_code=0 if fate == "ok"
                                            else 1, log_tail="boom" if fate == "exit" else "",
                                            weight_file=f"w/{key[0]}.pt" if fate == "ok"
                                            else ""))
        answers = [end]
        if fate != "unstartable" and rng.random() < 0.9:   # else its start is never told
            answers.append(Started(*key, begun))
        for _ in range(rng.choice([0, 0, 1, 2])):           # told twice, or more
            answers.append(rng.choice(answers))
        if launch.attempt > 1 and rng.random() < 0.3:       # a late word on an old attempt
            old = (launch.job_id, launch.attempt - 1)
            answers.append(rng.choice([Started(*old, begun.replace(attempt=old[1])),
                                       Ended(*old, begun.replace(attempt=old[1], exit_code=0)),
                                       Lost(*old, "late")]))
        self.ends[key] = end
        self.pending.extend(answers)

    def stop(self, runner: Runner, job_id: str) -> None:
        """A stop races the job's own end: either may be what it reports."""
        attempt = self.live.get(job_id, (0, None))[0]
        end = self.ends.get((job_id, attempt))
        if isinstance(end, Ended) and self.rng.random() < 0.7 and end in self.pending:
            stopped = Ended(job_id, attempt, end.report.replace(exit_code=143, stopped=True))
            self.pending = [stopped if a is end else a for a in self.pending]
            self.ends[(job_id, attempt)] = stopped

    def discard(self, runner: Runner) -> None:
        super().discard(runner)
        runner.job_id = None

    # ----------------------------------------------------------------- answers
    def poll(self, timeout: float):
        self.polls += 1
        assert self.polls < 5000, "the loop does not finish"
        self._act()
        if not self.pending:
            return []
        rng = self.rng
        rng.shuffle(self.pending)
        take = rng.randint(1, len(self.pending))
        out, self.pending = self.pending[:take], self.pending[take:]
        for answer in out:
            live = self.live.get(answer.job_id)
            if isinstance(answer, (Ended, Lost)) and live and live[0] == answer.attempt \
                    and answer is self.ends.get((answer.job_id, answer.attempt)):
                del self.live[answer.job_id]
                live[1].job_id = None      # the runner is free again (Lost: it is gone)
                if isinstance(answer, Lost):
                    self.runners.pop(live[1].name, None)
        return out

    def _act(self) -> None:
        """Now and then, what a user does meanwhile: stop a row, hold or rerun one."""
        rng, loop = self.rng, self.loop
        roll = rng.random()
        if roll < 0.04 and loop.rows:
            loop.stop_rows([rng.choice(sorted(loop.rows))])
        elif roll < 0.07 and loop.rows:
            job_id = rng.choice(sorted(loop.rows))
            word = rng.choice(["Hold", "Rerun", ""])
            _saved_a_while_ago(self.csv_path)   # the user's editor need not wait either
            QueueFile(self.csv_path).update({job_id: {"TrainingCheck": word}})
            self.edits.append((job_id, word))
            _saved_a_while_ago(self.csv_path)


def _queue(rng: random.Random, tmp_path):
    n = rng.randint(3, 10)
    rows = []
    for i in range(n):
        parent = f"r{rng.randrange(i)}" if i and rng.random() < 0.3 else ""
        rows.append([f"r{i}", f"run {i}", f"python train.py --i {i}", "", parent,
                     rng.choice(["0.25", "0.5", "1"]), rng.choice(["", "0", "1", "2"])])
    path = write_csv(tmp_path / "q.csv", HEADER, rows)
    _saved_a_while_ago(path)
    return path


def _saved_a_while_ago(path) -> None:
    """As if the editor saved it seconds ago: a reader need not wait for it to settle."""
    past = time.time() - 5
    os.utime(path, (past, past))


def _drive(seed: int, tmp_path) -> None:
    rng = random.Random(seed)
    folder = tmp_path / f"seed-{seed}"
    folder.mkdir()
    csv_path = _queue(rng, folder)
    config = load_config(None, retry_backoff=0.0, check_interval=3600.0)
    paths = queue_paths(csv_path, config)
    record = RunRecord(paths.registry)
    pool = ChaosPool(rng, csv_path, gpus=rng.choice([1, 2, 4]))
    changes = []
    loop = Scheduler(QueueFile(csv_path), config, paths.state_dir, record,
                     queue_name=paths.name, local_ray=True, observers=(changes.append,),
                     pool=pool)
    pool.loop = loop
    try:
        loop.run()
        _check(seed, loop, pool, changes, csv_path)
    finally:
        record.close()


def _check(seed, loop, pool, changes, csv_path) -> None:
    where = f"seed {seed}"
    assert not pool.overlaps, f"{where}: a row ran twice at once: {pool.overlaps}"
    launched = Counter((launch.job_id, launch.attempt) for launch, _ in pool.launches)
    assert all(n == 1 for n in launched.values()), f"{where}: an attempt started twice"
    ends = Counter((c.job_id, c.attempt) for c in changes
                   if c.old is not None and c.old.is_active and not c.new.is_active)
    assert ends == launched, f"{where}: attempts ended {ends}, launched {launched}"
    reruns = {job_id for job_id, word in pool.edits if word in ("Rerun", "")}
    done_then_run = {c.job_id for c in changes if c.new is S.DONE} & {
        launch.job_id for launch, _ in pool.launches if launch.attempt > 1}
    for job_id in done_then_run - reruns:
        order = [(c.new, c.attempt) for c in changes if c.job_id == job_id]
        first_done = next(a for new, a in order if new is S.DONE)
        assert not any(launch.job_id == job_id and launch.attempt > first_done
                       for launch, _ in pool.launches), f"{where}: {job_id} ran after Done"
    assert not any(st.status.is_active for st in loop.rows.values()), f"{where}: still running"
    rows = read_rows(csv_path)
    for st in loop.rows.values():
        assert rows[st.id].get("TrainingCheck", "") == st.status.value, \
            f"{where}: the file says {rows[st.id].get('TrainingCheck')!r} for {st.id}, " \
            f"the driver {st.status.label}"
        assert not rows[st.id].get("Error", "").startswith("internal"), \
            f"{where}: the driver failed handling {st.id}: {rows[st.id]['Error']}"


@pytest.mark.parametrize("block", range(4))
def test_every_interleaving_of_answers_edits_and_stops_keeps_the_driver_right(tmp_path, block):
    """``SEEDS`` seeded runs in four blocks; ``ORCH_INTERLEAVING_SEEDS`` raises it."""
    for seed in range(block, SEEDS, 4):
        _drive(seed, tmp_path)


def test_an_end_without_its_report_is_a_crash_of_that_row_only(tmp_path):
    """Defence in depth: were an answer ever malformed, the row it concerns ends Crash
    (internal) with what went wrong and every other row still runs."""

    class Broken(FakePool):
        def poll(self, timeout):
            return [Ended(e.job_id, e.attempt, None) if isinstance(e, Ended) and
                    e.job_id == "bad" else e for e in super().poll(timeout)]

    csv_path = write_csv(tmp_path / "q.csv", HEADER, [
        ["bad", "b", "python t.py", "", "", "0.5", "3"],
        ["good", "g", "python t.py", "", "", "0.5", ""]])
    config = load_config(None, retry_backoff=0.0)
    paths = queue_paths(csv_path, config)
    loop = Scheduler(QueueFile(csv_path), config, paths.state_dir, RunRecord(paths.registry),
                     queue_name=paths.name, local_ray=True, pool=Broken())
    assert loop.run() == 1
    rows = read_rows(csv_path)
    assert rows["good"]["TrainingCheck"] == "Done"
    assert rows["bad"]["TrainingCheck"] == "Crash"
    assert rows["bad"]["Error"].startswith(
        "internal: the driver failed handling this row: AttributeError: 'NoneType'")
    assert rows["bad"]["Attempts"] == "1", "a driver failure is not retried"

"""``apply(state, event, context)``: every rule of a row's lifecycle, without Ray or files."""

from types import MappingProxyType

import pytest

from orchestrator.core import (
    AttemptEnded,
    AttemptReport,
    Context,
    FailureKind,
    HandlingFailed,
    IllegalTransition,
    JobSpec,
    Kill,
    Launched,
    NotRunning,
    Readiness,
    Reattached,
    RecordAttempt,
    RetryPolicy,
    RowDeleted,
    RowRead,
    RowState,
    RowStatus,
    RunnerLost,
    RunnerStarted,
    StatusChanged,
    StopRequested,
    Unplaceable,
    Warn,
    WriteCells,
    apply,
)

S = RowStatus
K = FailureKind
CTX = Context(RetryPolicy(backoff=5), wall=1_700_000_000.0, mono=100.0)
READY = Readiness(S.PENDING, ready=True)


def spec(**kw) -> JobSpec:
    return JobSpec(**{"id": "m1", "line": 2, "name": "resnet", "command": "python t.py", **kw})


def read(cells=None, *, state=None, sp=None, problem="", recorded=0, before=None,
         before_command="python t.py"):
    return RowRead(2, spec() if sp is None and not problem else sp, problem,
                   cells=MappingProxyType(dict(cells or {})), recorded_attempts=recorded,
                   recorded=MappingProxyType(dict(before or {})),
                   recorded_command=before_command)


def step(state, event, ctx=CTX):
    return apply(state, event, ctx)


def first(cells=None, **kw) -> RowState:
    state, _ = step(RowState("m1"), read(cells, **kw))
    return state


def of(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


def written(effects) -> dict:
    out = {}
    for e in of(effects, WriteCells):
        out.update(e.cells)
    return out


def run_to(status, cells=None, *, sp=None) -> RowState:
    """A row brought to ``status`` by real events."""
    state = first(cells, sp=sp)
    state, _ = step(state, READY)
    if status is S.PENDING:
        return state
    state, _ = step(state, Launched(1, "wb1", "runs/m1/attempt-1/run.log", runner="r1", gpus=0.5))
    if status is S.QUEUED:
        return state
    state, _ = step(state, RunnerStarted(1, 1_700_000_000.0, "node-a", "0"))
    if status is S.TRAINING:
        return state
    report = AttemptReport("m1", 1, exit_code=0 if status is S.DONE else 3, started=1.0,
                           ended=2.0, node="node-a")
    state, _ = step(state, AttemptEnded(report, cells={"WeightFile": "runs/m1/w.pt"}))
    assert state.status is status
    return state


# ---------------------------------------------------------------- the file
@pytest.mark.parametrize("cell,status", [
    ("", S.PENDING), ("Done", S.DONE), ("Crash", S.CRASH), ("Stopped", S.STOPPED),
    ("Hold", S.HOLD), ("Rerun", S.PENDING), ("Training", S.TRAINING), ("Queued", S.QUEUED),
    ("Blocked", S.BLOCKED), ("Hodl", S.PENDING),
])
def test_a_first_read_takes_the_file_as_it_is(cell, status):
    state, effects = step(RowState("m1"), read({"TrainingCheck": cell, "Attempts": "2"},
                                               recorded=3))
    assert state.status is status and state.attempt == 3
    assert not of(effects, WriteCells), "reading writes nothing"
    [change] = of(effects, StatusChanged)
    assert change.old is None and change.new is status, "observers count rows first seen"


def test_an_unknown_word_makes_the_row_invalid_with_the_list():
    state = first({"TrainingCheck": "Hodl"})
    state, effects = step(state, READY)
    assert state.status is S.INVALID
    cells = written(effects)
    assert "TrainingCheck" not in cells, "the user's word stays for them to fix"
    assert cells["Error"].startswith("invalid: TrainingCheck='Hodl'")
    assert "Hold" in cells["Error"] and "Rerun" in cells["Error"]
    assert state.cell("TrainingCheck") == "Hodl"
    # typed on a finished row: the same
    done = run_to(S.DONE)
    typo, effects = step(done, read({**done.cells, "TrainingCheck": "Rerum"}))
    assert typo.status is S.INVALID and "TrainingCheck" not in written(effects)
    state, _ = step(state, read({**state.cells, "TrainingCheck": ""}))
    state, _ = step(state, READY)
    assert state.status is S.PENDING and state.ready, "fixing the word runs it"


def test_hold_is_never_started_and_keeps_its_word():
    state = first({"TrainingCheck": "hold"})
    state, effects = step(state, READY)
    assert state.status is S.HOLD and not state.ready and not effects[1:]
    with pytest.raises(IllegalTransition):
        step(state, Launched(1, "wb", "log"))
    state, effects = step(state, StopRequested(by="driver"))
    assert state.status is S.HOLD and not effects
    # a running row put on Hold while pending: the word is the user's, never overwritten
    pending = run_to(S.PENDING)
    held, effects = step(pending, read({**pending.cells, "TrainingCheck": "Hold"}))
    assert held.status is S.HOLD and "TrainingCheck" not in written(effects)
    back, _ = step(held, read({**held.cells, "TrainingCheck": ""}))
    assert back.status is S.PENDING


@pytest.mark.parametrize("word", ["", "Rerun", "rerun "])
def test_clearing_or_rerun_runs_a_finished_row_afresh(word):
    crashed = run_to(S.CRASH, sp=spec(retries=0))
    assert crashed.spent.as_dict() == {"crashes": 0, "losses": 0, "ooms": 0, "stalls": 0,
                                       "timeouts": 0}
    done = run_to(S.DONE)
    state, _ = step(done, read({**done.cells, "TrainingCheck": word}))
    assert state.status is S.PENDING and state.wandb_run_id == "" and state.failure is None
    state, _ = step(state, READY)
    assert state.ready


def test_a_stale_save_restores_the_orchestrators_cells_and_keeps_the_users():
    done = run_to(S.DONE)
    # the editor's copy from before the run: every owned cell blank
    state, effects = step(done, read({"TrainingCheck": "", "Attempts": ""},
                                     sp=spec(name="renamed")))
    assert state.status is S.DONE, "nothing runs again"
    assert state.spec.name == "renamed", "the user's edit stays"
    restored = written(effects)
    assert restored["TrainingCheck"] == "Done" and restored["Attempts"] == "1"
    assert restored["WeightFile"] == "runs/m1/w.pt"
    assert [w.stale for w in of(effects, Warn)] == [True]
    # a copy saved while it trained is stale too
    training = dict(done.history[-1])
    assert training["TrainingCheck"] == "Training"
    again, effects = step(done, read(training))
    assert again.status is S.DONE and written(effects)["TrainingCheck"] == "Done"


def test_a_save_that_lowers_attempts_is_stale():
    done = run_to(S.DONE)
    state, effects = step(done, read({**done.cells, "Attempts": "0", "TrainingCheck": ""}))
    assert state.status is S.DONE and of(effects, Warn)


def test_rerun_written_on_an_older_copy_is_the_users_word():
    done = run_to(S.DONE)
    state, effects = step(done, read({"TrainingCheck": "Rerun", "Attempts": ""}))
    assert state.status is S.PENDING and not of(effects, Warn)


# what an earlier driver last wrote (the run record keeps it): a save made while no
# driver ran is read against it when the next driver starts
WROTE = {"TrainingCheck": "Done", "Attempts": "2", "WandbRunID": "wb2",
         "WeightFile": "runs/m1/attempt-2/w.pt", "Ended": "2026-12-01 10:00:00"}


def test_a_stale_save_made_while_no_driver_ran_is_restored_at_start():
    state, effects = step(RowState("m1"), read({"TrainingCheck": "", "Attempts": ""},
                                               sp=spec(name="renamed"), recorded=2,
                                               before=WROTE))
    assert state.status is S.DONE and state.attempt == 2, "nothing runs again"
    assert state.spec.name == "renamed", "the user's edit stays"
    assert written(effects) == WROTE
    assert [w.stale for w in of(effects, Warn)] == [True]
    state, _ = step(state, READY)
    assert state.status is S.DONE and not state.ready


@pytest.mark.parametrize("cells,command,status", [
    ({**WROTE, "TrainingCheck": ""}, "python t.py", S.PENDING),     # cleared alone: rerun
    ({"TrainingCheck": "Rerun", "Attempts": ""}, "python t.py", S.PENDING),
    ({"TrainingCheck": "", "Attempts": ""}, "python other.py", S.PENDING),  # a new row, same ID
    ({**WROTE, "WeightFile": "/better/w.pt"}, "python t.py", S.DONE),  # fixed by hand: kept
    (WROTE, "python t.py", S.DONE),
])
def test_edits_made_while_no_driver_ran_mean_what_they_say(cells, command, status):
    state, effects = step(RowState("m1"), read(cells, recorded=2, before=WROTE,
                                               before_command=command))
    assert state.status is status
    assert not of(effects, WriteCells) and not of(effects, Warn)
    assert state.cell("WeightFile") == cells.get("WeightFile", "")


def test_a_hand_edit_of_an_owned_cell_is_kept():
    done = run_to(S.DONE)
    state, effects = step(done, read({**done.cells, "WeightFile": "/better/w.pt"}))
    assert state.status is S.DONE and state.cell("WeightFile") == "/better/w.pt"
    assert not of(effects, WriteCells) and not of(effects, Warn)


def test_the_file_cannot_move_a_running_row():
    training = run_to(S.TRAINING)
    state, effects = step(training, read({**training.cells, "TrainingCheck": "Done"}))
    assert state.status is S.TRAINING
    assert written(effects) == {"TrainingCheck": "Training"}
    state, effects = step(training, read(training.cells, sp=spec(command="other")))
    assert state.spec.command == "python t.py", "it keeps what it started with"


def test_typing_a_running_word_on_an_idle_row_runs_it():
    done = run_to(S.DONE)
    state, effects = step(done, read({**done.cells, "TrainingCheck": "Training"}))
    assert state.status is S.PENDING and "re-queued" in written(effects)["Error"]


def test_a_deleted_running_row_warns_and_keeps_running():
    state, effects = step(run_to(S.TRAINING), RowDeleted())
    assert state.status is S.TRAINING and "deleted" in of(effects, Warn)[0].message


# ------------------------------------------------------------ readiness
@pytest.mark.parametrize("readiness,status,error", [
    (Readiness(S.BLOCKED, "its pretrained parent p ended Crash"), S.BLOCKED,
     "its pretrained parent p ended Crash"),
    (Readiness(S.INVALID, "PretrainedModelId='x' makes a cycle"), S.INVALID,
     "invalid: PretrainedModelId='x' makes a cycle"),
    (Readiness(S.PENDING, "waiting for p"), S.PENDING, None),
])
def test_readiness_moves_only_waiting_rows(readiness, status, error):
    state, effects = step(first(), readiness)
    assert state.status is status and not state.ready
    assert written(effects).get("Error") == error
    done, effects = step(run_to(S.DONE), readiness)
    assert done.status is S.DONE and not effects


def test_a_row_that_cannot_be_parsed_is_invalid_until_fixed():
    state = first(problem="GPUs='abc': not a number — use a fraction")
    state, effects = step(state, READY)
    assert state.status is S.INVALID and written(effects)["Error"].startswith("invalid: GPUs")
    state, _ = step(state, read(state.cells))          # fixed in the file
    state, effects = step(state, READY)
    assert state.status is S.PENDING and written(effects)["Error"] == ""


def test_unplaceable_stays_invalid_until_the_row_changes():
    state, _ = step(first(), READY)
    state, effects = step(state, Unplaceable("needs {'GPU': 8} but the cluster has 4"))
    assert state.status is S.INVALID and "GPU" in written(effects)["Error"]
    state, _ = step(state, READY)
    assert state.status is S.INVALID, "the placement's verdict holds"
    state, _ = step(state, read(state.cells, sp=spec(gpus=1.0)))
    state, _ = step(state, READY)
    assert state.status is S.PENDING


# ------------------------------------------------------------ attempts
def test_launch_and_start_write_the_row_and_record_the_attempt():
    state, _ = step(first(), READY)
    state, effects = step(state, Launched(1, "wb1", "runs/m1/attempt-1/run.log", runner="r1",
                                          missing_weights_of="p", warning="p left none",
                                          record={"command": "python t.py"}))
    assert state.status is S.QUEUED
    cells = written(effects)
    assert list(cells)[0] == "TrainingCheck", "a new status column comes first"
    assert cells["Attempts"] == "1" and cells["WandbRunID"] == "wb1"
    assert cells["Error"] == "p left none"
    assert "PretrainedModelId" not in cells, "the user's cell is never rewritten"
    [change] = of(effects, StatusChanged)
    assert change.details["pretrained_weights_missing"] == "p"
    [record] = of(effects, RecordAttempt)
    assert record.begin and record.fields["status"] == "Queued"
    assert record.fields["error"] == "p left none"
    state, effects = step(state, RunnerStarted(1, 1_700_000_000.0, "node-a", "0,1"))
    assert state.status is S.TRAINING and written(effects)["Node"] == "node-a"
    assert of(effects, RecordAttempt)[0].fields["gpus"] == "0,1"


def test_done_stamps_its_end_and_reports_to_observers():
    state = run_to(S.TRAINING)
    report = AttemptReport("m1", 1, exit_code=0, best_metric=0.91, node="node-a")
    state, effects = step(state, AttemptEnded(report, cells={"WeightFile": "w.pt",
                                                             "BestConfig": "{}"}))
    cells = written(effects)
    assert state.status is S.DONE and cells["Ended"].startswith("2023-11-1")
    assert cells["WeightFile"] == "w.pt" and cells["BestMetric"] == "0.91"
    assert cells["BestConfig"] == "{}"
    [change] = of(effects, StatusChanged)
    assert change.report is report and change.failure is None and change.old is S.TRAINING
    assert of(effects, RecordAttempt)[0].fields["status"] == "Done"


def test_an_attempt_that_ends_while_queued_passes_through_training():
    state = run_to(S.QUEUED)
    state, effects = step(state, AttemptEnded(AttemptReport("m1", 1, exit_code=0)))
    assert [c.new for c in of(effects, StatusChanged)] == [S.TRAINING, S.DONE]


def test_a_crash_with_retries_left_goes_back_with_its_backoff():
    state = run_to(S.TRAINING, sp=spec(retries=1))
    report = AttemptReport("m1", 1, exit_code=3, log_tail="boom")
    state, effects = step(state, AttemptEnded(report))
    assert state.status is S.PENDING and state.not_before == CTX.mono + 5
    assert state.spent.crashes == 1
    assert written(effects)["Error"].startswith("exit: attempt 1: exit code 3: boom")
    assert of(effects, RecordAttempt)[0].fields["failure"] == "exit"
    state, _ = step(state, READY)
    state, _ = step(state, Launched(2, state.wandb_run_id, "log2"))
    state, _ = step(state, AttemptEnded(AttemptReport("m1", 2, exit_code=3)))
    assert state.status is S.CRASH and state.failure.kind is K.EXIT


def test_a_setup_failure_is_not_retried():
    state = run_to(S.TRAINING, sp=spec(retries=2))
    tail = "[orchestrator] use_conda = true but conda is not on this node's PATH: install conda"
    state, effects = step(state, AttemptEnded(AttemptReport("m1", 1, exit_code=98,
                                                            log_tail=tail)))
    assert state.status is S.CRASH
    assert written(effects)["Error"].startswith("setup: exit code 98 before the command ran")
    assert "install conda" in written(effects)["Error"]


def test_an_oom_under_more_gpu_retries_with_more():
    state = run_to(S.TRAINING, sp=spec(on_oom="more_gpu", gpus=0.5))
    report = AttemptReport("m1", 1, exit_code=1, log_tail="CUDA out of memory")
    state, effects = step(state, AttemptEnded(report, max_gpus=4))
    assert state.status is S.PENDING and state.gpus == 1.0 and state.asked_gpus == 1.0
    assert "GPUs=1" in written(effects)["Error"] and state.spent.ooms == 1


def test_a_lost_runner_requeues_free_and_bounded():
    state = run_to(S.TRAINING, sp=spec(retries=0))
    for n in range(1, 5):
        state, effects = step(state, RunnerLost(n, "ActorDiedError: the actor died"))
        if n < 4:
            assert state.status is S.PENDING and state.spent.losses == n
            assert written(effects)["Error"].startswith(f"lost: attempt {n} lost its node")
            state, _ = step(state, READY)
            state, _ = step(state, Launched(n + 1, state.wandb_run_id, "log"))
    assert state.status is S.CRASH and "lost its runner 4 times" in state.cell("Error")


def test_stop_kills_a_running_attempt_and_stops_a_waiting_row():
    state, effects = step(run_to(S.TRAINING), StopRequested())
    assert state.status is S.TRAINING and of(effects, Kill) == [Kill("m1", 1)]
    state, effects = step(state, AttemptEnded(AttemptReport("m1", 1, exit_code=143,
                                                            stopped=True)))
    assert state.status is S.STOPPED and written(effects)["Error"] == "stopped: stopped on request"
    waiting, effects = step(first(), StopRequested())
    assert waiting.status is S.STOPPED and "before it started" in written(effects)["Error"]
    done, effects = step(run_to(S.DONE), StopRequested())
    assert done.status is S.DONE and not effects


def test_a_driver_quitting_sends_its_attempts_back_to_pending():
    state, _ = step(run_to(S.TRAINING, sp=spec(retries=0)), StopRequested(by="driver"))
    state, effects = step(state, AttemptEnded(AttemptReport("m1", 1, exit_code=143,
                                                            stopped=True)))
    assert state.status is S.PENDING and not state.spent.any
    assert "interrupted" in written(effects)["Error"]
    assert of(effects, RecordAttempt)[0].fields["status"] == "Stopped"


def test_a_restarted_driver_reattaches_or_requeues():
    state = first({"TrainingCheck": "Training", "Attempts": "1"})
    attached, effects = step(state, Reattached(1, "wb1"))
    assert attached.status is S.TRAINING and attached.wandb_run_id == "wb1"
    gone, effects = step(attached, RunnerLost(1, "it left no result", while_down=True))
    assert gone.status is S.PENDING
    assert written(effects)["Error"] == ("lost: attempt 1 lost its node or runner (gone when "
                                         "the driver restarted: it left no result); re-queued")
    ghost, effects = step(first({"TrainingCheck": "Queued"}), NotRunning())
    assert ghost.status is S.PENDING and "no job was found" in written(effects)["Error"]


def test_events_about_another_attempt_change_nothing():
    state = run_to(S.TRAINING)
    for event in (RunnerStarted(7, None), AttemptEnded(AttemptReport("m1", 7, exit_code=0)),
                  RunnerLost(7, "x")):
        after, effects = step(state, event)
        assert after == state and not effects


def test_a_driver_failure_crashes_the_row_once_and_never_retries():
    """Whatever the row's Retries: the same bug would fail the next attempt too."""
    for status in (S.QUEUED, S.TRAINING, S.PENDING):
        state = run_to(status, sp=spec(retries=3))
        after, effects = step(state, HandlingFailed("KeyError: 'x'"))
        assert after.status is S.CRASH and not after.spent.any
        assert written(effects)["Error"].startswith(
            "internal: the driver failed handling this row: KeyError: 'x' — please report")
        changed = of(effects, StatusChanged)[0]
        assert changed.failure.kind is K.INTERNAL and changed.old is status
        assert bool(of(effects, RecordAttempt)) is status.is_active
    done, effects = step(run_to(S.DONE), HandlingFailed("KeyError: 'x'"))
    assert done.status is S.DONE and [type(e) for e in effects] == [Warn]


def test_cells_are_spreadsheet_safe():
    state = run_to(S.TRAINING)
    state, effects = step(state, AttemptEnded(AttemptReport("m1", 1, exit_code=1,
                                                            log_tail="=HYPERLINK(x)")))
    assert not written(effects)["Error"].startswith("=")


def test_a_running_row_renamed_in_the_file_shows_its_new_name_at_once():
    state = run_to(S.TRAINING)
    renamed = RowRead(2, spec(command="python other.py", name="resnet-v2"), "",
                      cells=MappingProxyType({"TrainingCheck": "Training", "Attempts": "1"}),
                      name="resnet-v2")
    state, _ = step(state, renamed)
    assert state.status is S.TRAINING and state.spec.name == "resnet-v2"
    assert state.spec.command == "python t.py", "the running attempt keeps its command"
    state, effects = step(state, AttemptEnded(AttemptReport("m1", 1, exit_code=0)))
    [change] = of(effects, StatusChanged)
    assert change.row["Name"] == "resnet-v2"

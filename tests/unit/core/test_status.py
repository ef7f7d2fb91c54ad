"""The row-status vocabulary and what a TrainingCheck cell means."""

import pytest

from orchestrator.core import TRANSITIONS, RowStatus, read_word, registry_word
from orchestrator.core.status import unknown_word_message

S = RowStatus


@pytest.mark.parametrize("text,status,rerun", [
    ("Done", S.DONE, False), ("DONE", S.DONE, False), (" done ", S.DONE, False),
    ("training", S.TRAINING, False), ("CRASH", S.CRASH, False), ("stopped", S.STOPPED, False),
    ("queued", S.QUEUED, False), ("Blocked", S.BLOCKED, False), ("invalid", S.INVALID, False),
    ("", S.PENDING, False), (None, S.PENDING, False), ("  ", S.PENDING, False),
    ("Hold", S.HOLD, False), ("hold", S.HOLD, False), ("Rerun", S.PENDING, True),
    (" RERUN", S.PENDING, True),
])
def test_words(text, status, rerun):
    word = read_word(text)
    assert word.known and word.status is status and word.rerun is rerun


@pytest.mark.parametrize("text", ["finished!", "Don", "Hodl", "pending?", "TODO"])
def test_unknown_words(text):
    assert not read_word(text).known


def test_the_unknown_word_message_lists_the_words():
    text = unknown_word_message(" Hodl ")
    assert "TrainingCheck='Hodl'" in text
    for word in ("blank", "Hold", "Rerun", "Done", "Crash", "Invalid"):
        assert word in text


def test_values_round_trip_and_labels():
    for status in S:
        assert read_word(status.value).status is status
        assert S.from_label(status.label) is status
    assert S.PENDING.label == "Pending" and S.HOLD.value == "Hold"
    with pytest.raises(ValueError):
        S.from_label("Hodl")


def test_groups():
    assert {s for s in S if s.is_active} == {S.QUEUED, S.TRAINING}
    assert {s for s in S if s.is_finished} == {S.DONE, S.CRASH, S.STOPPED}
    assert {s for s in S if s.is_failed} == {S.CRASH, S.STOPPED, S.BLOCKED, S.INVALID}
    assert {s for s in S if s.is_derived} == {S.PENDING, S.BLOCKED, S.INVALID}


def test_transition_table():
    assert set(TRANSITIONS) == set(S), "every status has an entry"
    assert all(s not in TRANSITIONS[s] for s in S), "no self-loops"
    assert S.DONE not in TRANSITIONS[S.QUEUED], "an attempt passes through Training"
    for s in set(S) - {S.DONE}:   # a running attempt, or a user's word, reaches Done
        assert (S.DONE in TRANSITIONS[s]) == (s is S.TRAINING or not s.is_active)
    assert TRANSITIONS[S.QUEUED] == {S.TRAINING, S.PENDING, S.CRASH, S.STOPPED}
    assert TRANSITIONS[S.TRAINING] == {S.DONE, S.CRASH, S.STOPPED, S.PENDING}
    assert all(S.QUEUED not in TRANSITIONS[s] for s in S if s is not S.PENDING), \
        "only a pending row is launched"


@pytest.mark.parametrize("status,word", [
    (S.DONE, "completed"), (S.CRASH, "failed"), (S.STOPPED, "stopped"),
    (S.TRAINING, "running"), (S.PENDING, "failed")])
def test_registry_words_are_a_view(status, word):
    assert registry_word(status) == word

"""GpuLedger: pinned GPUs are never handed out twice."""

from orchestrator.execution.gpus import GpuLedger


def test_claim_slot_gives_the_lowest_free_slot():
    ledger = GpuLedger(((0,), (1,), (2,)))
    assert ledger.claim_slot("a") == (0, (0,))
    assert ledger.claim_slot("b") == (1, (1,))
    ledger.release("a")
    assert ledger.claim_slot("c") == (0, (0,)), "the freed lowest slot comes first"
    assert ledger.claim_slot("d") == (2, (2,))
    assert ledger.claim_slot("e") is None
    assert ledger.busy() == {0: "c", 1: "b", 2: "d"}


def test_overlapping_slots_never_share_a_gpu():
    ledger = GpuLedger(((0, 1), (1, 2), (3,), (2,)))
    assert ledger.claim_slot("a") == (0, (0, 1))
    assert ledger.claim_slot("b") == (2, (3,)), "slot 1 shares GPU 1 with slot 0"
    assert ledger.claim_slot("c") == (3, (2,))
    assert ledger.claim_slot("d") is None
    ledger.release("a")
    assert ledger.claim_slot("d") == (0, (0, 1))
    assert ledger.claim_slot("e") is None, "slot 1 needs GPU 2, which c holds"
    ledger.release("c")
    ledger.release("d")
    assert ledger.claim_slot("e") == (0, (0, 1))
    assert ledger.claim_slot("f") == (3, (2,))
    assert ledger.busy() == {0: "e", 1: "e", 2: "f", 3: "b"}


def test_every_claimed_gpu_has_one_owner():
    ledger = GpuLedger(((0, 1), (1, 2), (2, 3), (0,), (3,)))
    owners = {}
    for i in range(6):
        got = ledger.claim_slot(f"j{i}")
        if got is not None:
            for g in got[1]:
                assert g not in owners, f"GPU {g} handed to j{i} while {owners.get(g)} has it"
                owners[g] = f"j{i}"
    assert ledger.busy() == owners


def test_claim_of_a_busy_gpu_fails_and_takes_nothing():
    ledger = GpuLedger()
    assert ledger.claim("a", (0,))
    assert not ledger.claim("b", (5, 0)), "GPU 0 is busy"
    assert ledger.busy() == {0: "a"}, "a failed claim takes no GPU"
    assert ledger.claim("b", (5,))
    ledger.release("a")
    assert ledger.claim("c", (0,))
    assert ledger.busy() == {0: "c", 5: "b"}


def test_release_only_frees_that_jobs_gpus():
    ledger = GpuLedger()
    ledger.claim("a", (0, 1))
    ledger.claim("b", (2,))
    ledger.release("a")
    ledger.release("unknown")
    assert ledger.busy() == {2: "b"}
    assert GpuLedger().claim_slot("x") is None, "no slots, nothing to claim"

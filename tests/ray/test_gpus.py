"""GPU placement on a real local Ray with 4 logical GPUs."""

from collections import Counter

import pytest

from tests.helpers import QueueRun, probe, probe_records, read_rows, run_queue, wait_for, write_csv

pytestmark = pytest.mark.usefixtures("ray_session")
HEADER = ["ID", "Name", "TrainingCommand", "TrainingCheck", "GPUs", "GpuID"]


def max_overlap(records, key=lambda r: "all"):
    """The most jobs (per key) that ran at the same moment."""
    events = []
    for r in records:
        events += [(r["start"], 1, key(r)), (r["end"], -1, key(r))]
    live, most = Counter(), Counter()
    for _, delta, k in sorted(events, key=lambda e: (e[0], e[1])):
        live[k] += delta
        most[k] = max(most[k], live[k])
    return most


def test_half_gpu_rows_pack_two_per_gpu(tmp_path):
    out = tmp_path / "out"
    rows = [[f"h{i}", "", probe(f"h{i}", out, "--sleep", "3"), "", "0.5", ""] for i in range(8)]
    csv = write_csv(tmp_path / "q.csv", HEADER, rows)
    assert run_queue(csv) == 0
    records = probe_records(out)
    assert len(records) == 8
    assert all(r["cuda"] in {"0", "1", "2", "3"} for r in records)
    assert max_overlap(records)["all"] == 8, "eight 0.5-GPU rows should run at once on 4 GPUs"
    assert max(max_overlap(records, key=lambda r: r["cuda"]).values()) == 2
    assert all(row["TrainingCheck"] == "Done" for row in read_rows(csv).values())


def test_queue_metrics_count_rows_and_gpu_seconds(tmp_path):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "q.csv", HEADER, [
        ["a", "", probe("a", out, "--sleep", "0.5"), "", "2", ""],
        ["b", "", probe("b", out, "--exit", "1"), "", "0", ""]])
    run = QueueRun(csv).start()
    assert run.join() == 1
    assert run.metrics.counts == {"Done": 1, "Crash": 1}
    # a ran 0.5 s or more on 2 GPUs; b used none
    assert 1.0 <= run.metrics.gpu_seconds < 10


def test_multi_gpu_row_and_cpu_row(tmp_path):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "q.csv", HEADER, [
        ["wide", "", probe("wide", out, "--sleep", "1.5"), "", "2", ""],
        ["cpu", "", probe("cpu", out), "", "0", ""],
    ])
    run = QueueRun(csv).start()
    # what a live display shows: the GPU ids the running row holds
    live = wait_for(lambda: [r for r in run.scheduler.snapshot() if r.id == "wide"
                             and r.status.label == "Training"] if run.scheduler else None)
    assert run.join() == 0
    assert len(live[0].assigned_gpus.split(",")) == 2
    by_name = {r["name"]: r for r in probe_records(out)}
    assert len(by_name["wide"]["cuda"].split(",")) == 2
    # Ray leaves it unset for zero-GPU actors; a CPU row must see no GPU at all
    assert by_name["cpu"]["cuda"] == ""


def test_row_asking_more_gpus_than_exist_is_invalid(tmp_path):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "q.csv", HEADER, [
        ["huge", "", probe("huge", out), "", "8", ""],
        ["ok", "", probe("ok", out), "", "1", ""],
    ])
    assert run_queue(csv) == 1
    rows = read_rows(csv)
    assert rows["huge"]["TrainingCheck"] == "Invalid"
    assert "GPU" in rows["huge"]["Error"] and "--num-gpus" in rows["huge"]["Error"]
    assert rows["ok"]["TrainingCheck"] == "Done"


def test_process_gpu_mapping_pins_slots_and_never_double_books(tmp_path):
    out = tmp_path / "out"
    rows = [[f"p{i}", "", probe(f"p{i}", out, "--sleep", "0.7"), "", "", ""] for i in range(5)]
    csv = write_csv(tmp_path / "q.csv", HEADER, rows)
    code = run_queue(csv, enable_gpu_assignment=True, process_gpu_mapping="process0=0+1,process1=2")
    assert code == 0
    records = probe_records(out)
    assert {r["cuda"] for r in records} <= {"0,1", "2"}
    assert max_overlap(records)["all"] == 2
    assert all(v == 1 for v in max_overlap(records, key=lambda r: r["cuda"]).values())


def test_gpu_id_column_mode(tmp_path):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "q.csv", HEADER, [
        ["a", "", probe("a", out, "--sleep", "0.7"), "", "", "1"],
        ["b", "", probe("b", out, "--sleep", "0.7"), "", "", "1"],
        ["c", "", probe("c", out, "--sleep", "0.7"), "", "", "2+3"],
    ])
    assert run_queue(csv, enable_gpu_assignment=True, use_process_order=False) == 0
    by_name = {r["name"]: r for r in probe_records(out)}
    assert by_name["a"]["cuda"] == by_name["b"]["cuda"] == "1"
    assert by_name["c"]["cuda"] == "2,3"
    a, b = by_name["a"], by_name["b"]
    assert a["end"] <= b["start"] or b["end"] <= a["start"], "GPU 1 was double-booked"


def test_allow_multi_gpu_false_rejects_a_two_gpu_row(tmp_path):
    out = tmp_path / "out"
    csv = write_csv(tmp_path / "q.csv", HEADER, [["w", "", probe("w", out), "", "2", ""]])
    assert run_queue(csv, allow_multi_gpu=False) == 1
    row = read_rows(csv)["w"]
    assert row["TrainingCheck"] == "Invalid" and "allow_multi_gpu" in row["Error"]
    assert not out.exists()

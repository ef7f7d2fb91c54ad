"""QueueFile round trips and merges: what the user wrote survives our updates."""

import csv
import io
import os
import time

import orchestrator.store.queue_file as queue_mod
from orchestrator.store.queue_file import QueueFile

BOM = "\ufeff"
NL = "\r\n"
HEADER = "ID,Name,TrainingCommand,TrainingCheck,Notes,Owner Column,Zeta"
M1 = ('m1,모델 하나,"python train.py --tags ""a,b"" --lr 0.1",,"first line\nsecond, ""quoted""",'
      'kim,z1')
# Quoting a CSV writer would not produce ("lee", "") so a re-rendered row would show.
M2 = 'm2,"두 줄\r\n이름","python -c ""print(1)""",Queued,"note, with comma","lee",  spaced  '
M3 = 'm3,세 번째,python t.py,"",,,'



def write(path, data: bytes | str, encoding="utf-8"):
    """Write the file as a user's editor would, then age it past QUIET_S (no wait)."""
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    old = time.time() - 5
    os.utime(path, (old, old))
    return path


def cells(record_text):
    return next(csv.reader(io.StringIO(record_text, newline="")))


def rows_by_id(path):
    return {row["ID"]: row for _, row in QueueFile(path).read().rows()}


def excel_file(tmp_path):
    text = BOM + NL.join([HEADER, M1, M2, "", M3]) + NL
    return write(tmp_path / "queue.csv", text), text


def test_untouched_rows_stay_byte_for_byte(tmp_path):
    path, _ = excel_file(tmp_path)
    QueueFile(path).update({"m1": {"TrainingCheck": "Done"}})
    new = path.read_bytes().decode("utf-8")
    head = BOM + HEADER + NL
    tail = NL + M2 + NL + NL + M3 + NL
    assert new.startswith(head), "the BOM and the header line must be kept"
    assert new.endswith(tail), "rows m2, m3 and the blank line must be kept byte for byte"
    touched = new[len(head):-len(tail)]
    expected = cells(M1)
    expected[3] = "Done"
    assert cells(touched) == expected, "the touched row must keep all its other cells"


def test_touched_row_keeps_values_and_crlf_bom(tmp_path):
    path, _ = excel_file(tmp_path)
    table = QueueFile(path).update({"m2": {"TrainingCheck": "Training", "Notes": "x=1, y"}})
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    # the only bare LF is the one inside m1's Notes cell: line endings stay CRLF
    assert data.replace(b"\r\n", b"").count(b"\n") == 1
    row = rows_by_id(path)["m2"]
    assert row["Name"] == "두 줄\r\n이름"
    assert row["TrainingCommand"] == 'python -c "print(1)"'
    assert row["Owner Column"] == "lee" and row["Zeta"] == "  spaced  "
    assert row["TrainingCheck"] == "Training" and row["Notes"] == "x=1, y"
    returned = {r["ID"]: (line, r) for line, r in table.rows()}
    assert returned["m2"] == (4, row), "the returned table is the file as now written"


def test_new_columns_are_appended_to_the_header(tmp_path):
    path, _ = excel_file(tmp_path)
    before = rows_by_id(path)
    QueueFile(path).update({"m3": {"Error": "boom, badly", "Attempts": "2"}})
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8")
    assert text.startswith(BOM + HEADER + ",Error,Attempts" + NL)
    after = rows_by_id(path)
    assert list(after) == ["m1", "m2", "m3"]
    for job_id, row in before.items():
        expect = dict(row, Error="", Attempts="")
        if job_id == "m3":
            expect.update(Error="boom, badly", Attempts="2")
        assert after[job_id] == expect
    assert M2 in text and M1 in text, "untouched records keep their text (plus empty cells)"


def test_file_without_trailing_newline(tmp_path):
    path = write(tmp_path / "q.csv", "ID,TrainingCommand,TrainingCheck\nm1,a,\nm2,b,")
    QueueFile(path).update({"m2": {"TrainingCheck": "Done"}})
    assert path.read_bytes() == b"ID,TrainingCommand,TrainingCheck\nm1,a,\nm2,b,Done"
    write(path, path.read_bytes())
    QueueFile(path).update({"m1": {"TrainingCheck": "Crash"}})
    assert path.read_bytes() == b"ID,TrainingCommand,TrainingCheck\nm1,a,Crash\nm2,b,Done"


def test_blank_lines_are_preserved(tmp_path):
    original = "ID,TrainingCommand,TrainingCheck\n\nm1,a,\n\n\n,,\nm2,b,\n\n"
    path = write(tmp_path / "q.csv", original)
    QueueFile(path).update({"m2": {"TrainingCheck": "Done"}})
    assert path.read_text() == original.replace("m2,b,", "m2,b,Done")


def test_lf_file_stays_lf(tmp_path):
    path = write(tmp_path / "q.csv", "ID,TrainingCommand,Notes\nm1,a,\"two\nlines\"\nm2,b,\n")
    QueueFile(path).update({"m1": {"TrainingCheck": "Done"}})
    data = path.read_bytes()
    assert b"\r" not in data
    assert data == b'ID,TrainingCommand,Notes,TrainingCheck\nm1,a,"two\nlines",Done\nm2,b,,\n'


def test_rows_appended_after_our_read_survive(tmp_path):
    path = write(tmp_path / "q.csv", "ID,TrainingCommand,TrainingCheck\nm1,a,\n")
    qf = QueueFile(path)
    assert [r["ID"] for _, r in qf.read().rows()] == ["m1"]
    # The user adds a row and saves, after our read and before our update.
    write(path, "ID,TrainingCommand,TrainingCheck\nm1,a,\nm2,user row,\n")
    qf.update({"m1": {"TrainingCheck": "Training"}})
    assert path.read_text() == "ID,TrainingCommand,TrainingCheck\nm1,a,Training\nm2,user row,\n"


def test_a_save_during_our_update_is_merged_not_overwritten(tmp_path, monkeypatch):
    path = write(tmp_path / "q.csv", "ID,TrainingCommand,TrainingCheck\nm1,a,\n")
    real_render = QueueFile._render
    calls = []

    def render_while_user_saves(self, table, changes):
        calls.append(1)
        if len(calls) == 1:  # the user saves between our read and our rename
            with open(path, "a") as f:
                f.write("m2,saved meanwhile,\n")
        return real_render(self, table, changes)

    monkeypatch.setattr(QueueFile, "_render", render_while_user_saves)
    monkeypatch.setattr(queue_mod, "QUIET_S", 0.0)
    QueueFile(path).update({"m1": {"TrainingCheck": "Done"}})
    assert path.read_text() == "ID,TrainingCommand,TrainingCheck\nm1,a,Done\nm2,saved meanwhile,\n"
    assert len(calls) >= 2


def test_update_for_a_deleted_id_is_dropped(tmp_path):
    original = "ID,TrainingCommand,TrainingCheck\nm1,a,\n"
    path = write(tmp_path / "q.csv", original)
    table = QueueFile(path).update({"gone": {"TrainingCheck": "Done"}})
    assert path.read_text() == original
    assert [r["ID"] for _, r in table.rows()] == ["m1"]
    QueueFile(path).update({"gone": {"TrainingCheck": "Done"}, "m1": {"TrainingCheck": "Crash"}})
    assert path.read_text() == "ID,TrainingCommand,TrainingCheck\nm1,a,Crash\n"


def test_duplicate_ids_both_get_the_update(tmp_path):
    path = write(tmp_path / "q.csv", "ID,TrainingCommand,TrainingCheck\nm1,a,\nm2,b,\nm1,c,\n")
    QueueFile(path).update({"m1": {"TrainingCheck": "Invalid"}})
    assert path.read_text() == (
        "ID,TrainingCommand,TrainingCheck\nm1,a,Invalid\nm2,b,\nm1,c,Invalid\n")


def test_no_change_does_not_rewrite_the_file(tmp_path):
    path = write(tmp_path / "q.csv", "ID,TrainingCommand,TrainingCheck\nm1,a,Done\n")
    before = os.stat(path)
    QueueFile(path).update({"m1": {"TrainingCheck": "Done"}})
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_read_reports_lines_and_padded_cells(tmp_path):
    path = write(tmp_path / "q.csv", 'ID,TrainingCommand,Notes\n\nm1,"x\ny"\nm2,b,n\n')
    rows = QueueFile(path).read().rows()
    assert rows == [(3, {"ID": "m1", "TrainingCommand": "x\ny", "Notes": ""}),
                    (5, {"ID": "m2", "TrainingCommand": "b", "Notes": "n"})]


def test_stray_cell_beyond_header_does_not_become_a_new_column(tmp_path):
    """LIBRARY BUG: an untouched row with a cell beyond the header keeps its raw text when
    update() appends a column, so on the next read that stray cell becomes the new column's
    value (here TrainingCheck='Done' for a row the orchestrator never ran)."""
    path = write(tmp_path / "q.csv", "ID,TrainingCommand,Notes\nm1,a,n\nm2,b,n2,Done\n")
    QueueFile(path).update({"m1": {"TrainingCheck": "Training"}})
    rows = rows_by_id(path)
    assert rows["m1"]["TrainingCheck"] == "Training"
    assert rows["m2"]["TrainingCheck"] == "", "m2 was not updated; its stray cell moved columns"


def test_what_an_update_returns_is_what_a_fresh_read_sees(tmp_path):
    """Successive updates reuse the table of our own last write instead of parsing the
    file again; the table they return must be the file as any reader parses it, values
    with commas, quotes and new lines included."""
    import random

    rng = random.Random(7)
    path = write(tmp_path / "q.csv", BOM + NL.join([HEADER, M1, M2, M3]) + NL)
    queue = QueueFile(path)
    values = ["Done", "", "a,b", 'say "hi"', "two\nlines", "Crash", "x\r\ny", "한글"]
    for _ in range(60):
        changes = {job_id: {rng.choice(["TrainingCheck", "Error", "WeightFile"]):
                            rng.choice(values)} for job_id in rng.sample(["m1", "m2", "m3"], 2)}
        returned = queue.update(changes)
        fresh = QueueFile(path).read()
        assert returned.rows() == fresh.rows()
        assert [r.raw for r in returned.records] == [r.raw for r in fresh.records]
        assert returned.stat == fresh.stat

"""QueueFile errors, encodings, spreadsheet-safe cells, and crash safety of writes."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import orchestrator
from orchestrator.core import OWNED_COLUMNS, column_typos, safe_cell
from orchestrator.infra.errors import QueueFileError
from orchestrator.store.queue_file import QueueFile

REPO = Path(orchestrator.__file__).resolve().parents[1]


def write(path, data: bytes | str):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    old = time.time() - 5
    os.utime(path, (old, old))
    return path


def error_for(path, action="read"):
    with pytest.raises(QueueFileError) as info:
        if action == "read":
            QueueFile(path).read()
        else:
            QueueFile(path).update({"m1": {"TrainingCheck": "Done"}})
    return info.value


@pytest.mark.parametrize("action", ["read", "update"])
def test_missing_file(tmp_path, action):
    path = tmp_path / "nope.csv"
    err = error_for(path, action)
    assert str(path) in str(err)
    assert "does not exist" in str(err)
    assert "ID,Name,TrainingCommand" in str(err), "the message says how to create it"
    assert not path.exists(), "a failed update must not create the queue file"


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\n  \r\n"], ids=["0b", "bom", "ws"])
def test_empty_file(tmp_path, data):
    path = write(tmp_path / "q.csv", data)
    err = error_for(path)
    assert str(path) in str(err) and "empty" in str(err)
    assert "add a header line" in str(err)


@pytest.mark.parametrize("header,missing", [
    ("Name,TrainingCommand", "ID"),
    ("ID,Name,Command", "TrainingCommand"),
])
def test_header_without_required_columns(tmp_path, header, missing):
    path = write(tmp_path / "q.csv", header + "\nm1,x,y\n")
    err = error_for(path)
    text = str(err)
    assert text.startswith(f"{path} line 1: ")
    assert f"missing required column(s) {missing}" in text
    assert header.replace(",", ", ") in text, "the message shows the header it found"
    assert "at least ID,TrainingCommand" in text


def test_a_misspelled_required_column_is_named_with_did_you_mean(tmp_path):
    path = write(tmp_path / "q.csv", "ID,Name,TraningCommand\nm1,x,y\n")
    text = str(error_for(path))
    assert "missing required column(s) TrainingCommand" in text
    assert "did you mean it? 'TraningCommand' is probably TrainingCommand: rename it" in text


def test_known_columns_are_read_without_regard_to_case_and_written_into_the_users(tmp_path):
    """`id,trainingcommand,gpus,trainingcheck` is the queue it looks like; our cells go
    into the user's own spelling of the column and the header is kept as written."""
    path = write(tmp_path / "q.csv", "id,trainingcommand,gpus,trainingcheck\nm1,x,0.5,\n")
    queue = QueueFile(path, writable=OWNED_COLUMNS)
    [(line, row)] = queue.read().rows()
    assert row == {"ID": "m1", "TrainingCommand": "x", "GPUs": "0.5", "TrainingCheck": ""}
    queue.update({"m1": {"TrainingCheck": "Done"}})
    assert path.read_text() == "id,trainingcommand,gpus,trainingcheck\nm1,x,0.5,Done\n"


def test_duplicate_column_names(tmp_path):
    path = write(tmp_path / "q.csv", "ID,TrainingCommand,Notes,GPUs, Notes\nm1,a,b,1,c\n")
    err = error_for(path)
    assert str(err).startswith(f"{path} line 1: ")
    assert "Notes appear twice" in str(err)
    assert "rename or delete the extra column" in str(err)


def test_header_cells_are_trimmed(tmp_path):
    path = write(tmp_path / "q.csv", " ID , TrainingCommand \nm1,a\n")
    assert QueueFile(path).read().rows() == [(2, {"ID": "m1", "TrainingCommand": "a"})]


KOREAN = "ID,Name,TrainingCommand,TrainingCheck\r\nm1,한글 이름,python t.py,\r\nm2,둘째,x,\r\n"


def test_cp949_file_is_refused_with_the_encoding_to_name(tmp_path):
    """Bytes that are not UTF-8 are never guessed at (a guess turns a latin-1 name into
    mojibake silently); the message offers the encoding the file reads right in."""
    path = write(tmp_path / "q.csv", KOREAN.encode("cp949"))
    before = path.read_bytes()
    err = error_for(path)
    text = str(err)
    assert text.startswith(f"{path} line 2: the file is not UTF-8 text: byte(s) c7 at column 4")
    assert "--encoding cp949" in text and "m1,한글 이름,python t.py," in text
    assert "encoding = cp949 in [general]" in text
    assert path.read_bytes() == before


def test_cp949_file_named_is_read_and_written_back_in_cp949(tmp_path):
    path = write(tmp_path / "q.csv", KOREAN.encode("cp949"))
    table = QueueFile(path, encoding="cp949").read()
    assert table.rows()[0][1]["Name"] == "한글 이름"
    QueueFile(path, encoding="cp949").update({"m1": {"TrainingCheck": "Done", "Error": "없음"}})
    data = path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data.decode("cp949") == (
        "ID,Name,TrainingCommand,TrainingCheck,Error\r\nm1,한글 이름,python t.py,Done,없음\r\n"
        "m2,둘째,x,,\r\n")


def test_latin1_name_is_refused_not_turned_into_mojibake(tmp_path):
    text = "ID,Name,TrainingCommand\nm1,ok,a\nm2,Åsa,b\n"
    path = write(tmp_path / "q.csv", text.encode("latin-1"))
    text = str(error_for(path))
    assert text.startswith(f"{path} line 3: the file is not UTF-8 text: byte(s) c5 at column 4")
    assert "--encoding cp1252" in text and "'m2,Åsa,b'" in text
    assert QueueFile(path, encoding="cp1252").read().rows()[1][1]["Name"] == "Åsa"


def test_unknown_encoding_is_named(tmp_path):
    path = write(tmp_path / "q.csv", "ID,TrainingCommand\nm1,a\n")
    with pytest.raises(QueueFileError, match="unknown encoding 'utf-9'.*--encoding cp949"):
        QueueFile(path, encoding="utf-9").read()


@pytest.mark.parametrize("codec,bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_with_bom_is_read_and_written_back_as_utf16(tmp_path, codec, bom):
    text = "ID,Name,TrainingCommand\r\nm1,Åsa 한글,python t.py\r\n"
    path = write(tmp_path / "q.csv", bom + text.encode(codec))
    assert QueueFile(path).read().rows()[0][1]["Name"] == "Åsa 한글"
    QueueFile(path).update({"m1": {"TrainingCheck": "Done"}})
    data = path.read_bytes()
    assert data.startswith(bom)
    assert data[2:].decode(codec) == ("ID,Name,TrainingCommand,TrainingCheck\r\n"
                                      "m1,Åsa 한글,python t.py,Done\r\n")


def test_unclosed_quote_at_the_end_refuses_the_file(tmp_path):
    data = 'ID,Name,TrainingCommand\nm1,a,python t.py\nm2,b,"python t.py --x\nm3,c,echo hi\n'
    path = write(tmp_path / "q.csv", data)
    for action in ("read", "update"):
        text = str(error_for(path, action))
        assert text.startswith(f"{path} line 3: the quote opened on line 3, column 6 is not "
                               "closed where its cell ends, so lines 3–4 read as one cell")
        assert "close the quote" in text and "nothing was run or changed" in text
    assert path.read_bytes() == data.encode()


def test_unclosed_quote_mid_file_refuses_the_file(tmp_path):
    """The stray quote pairs with the next quoted cell: the lines between vanish into one
    command unless the file is refused."""
    data = ('ID,Name,TrainingCommand\nm1,"a,python t.py\nm2,b,echo\n'
            'm3,c,"python t.py --tag ""x"""\nm4,d,echo\n')
    path = write(tmp_path / "q.csv", data)
    text = str(error_for(path))
    assert text.startswith(f"{path} line 2: the quote opened on line 2, column 4")
    assert "lines 2–4 read as one cell" in text
    assert path.read_bytes() == data.encode()


def test_text_after_a_closing_quote_refuses_the_file(tmp_path):
    path = write(tmp_path / "q.csv", 'ID,Name,TrainingCommand\nm1,"a" b,echo\n')
    text = str(error_for(path))
    assert text.startswith(f"{path} line 2: a quoted cell on line 2, column 4 does not end")
    assert '""' in text


def test_quoted_cells_across_lines_are_still_read(tmp_path):
    path = write(tmp_path / "q.csv", 'ID,Name,TrainingCommand\nm1,"two\nlines","say ""hi"""\n')
    assert QueueFile(path).read().rows()[0][1] == {
        "ID": "m1", "Name": "two\nlines", "TrainingCommand": 'say "hi"'}


def test_utf8_without_bom_gets_no_bom(tmp_path):
    path = write(tmp_path / "q.csv", "ID,TrainingCommand,Name\nm1,a,가\n")
    QueueFile(path).update({"m1": {"TrainingCheck": "Done"}})
    assert path.read_bytes() == "ID,TrainingCommand,Name,TrainingCheck\nm1,a,가,Done\n".encode()


@pytest.mark.parametrize("text", ["=cmd|' /C calc'!A0", "+x", "@x", "=1+1", "-=x", "\tx"])
def test_safe_cell_defuses_formulas(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["abc", "-m1", "0.5", "-0.5", "", "a=b", "Done", "x+y"])
def test_safe_cell_leaves_plain_text_alone(text):
    assert safe_cell(text) == text


WRITER = textwrap.dedent("""
    import itertools, sys
    import orchestrator.store.queue_file as q
    q.QUIET_S = 0.0  # write as fast as possible
    qf = q.QueueFile(sys.argv[1])
    for i in itertools.count():
        big = ("A" if i % 2 else "B") * (120_000 if i % 2 else 50_000)  # csv limit: 128 KiB
        qf.update({"m1": {"Notes": big}, "m3": {"Notes": big.lower(), "Attempts": str(i)},
                   "m5": {"Notes": big}})
        if i == 0:
            print("wrote", flush=True)
""")


def looks_complete(data: bytes) -> bool:
    return (data.startswith(b"\xef\xbb\xbfID,") and data.endswith(b"\r\n")
            and all(f"\r\nm{i},".encode() in data for i in range(1, 7)))


def test_killed_writer_never_leaves_a_half_written_file(tmp_path):
    header = "ID,Name,TrainingCommand,TrainingCheck,Notes"
    rows = [f"m{i},이름 {i},python t.py --i {i},," for i in range(1, 7)]
    path = write(tmp_path / "queue.csv", "\ufeff" + "\r\n".join([header, *rows]) + "\r\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    rng = random.Random(7)
    seen_notes = set()
    for _round in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "wrote", proc.stderr.read()
            deadline = time.monotonic() + rng.uniform(0.2, 0.5)
            while time.monotonic() < deadline:  # readers too never see a partial file
                assert looks_complete(path.read_bytes()), "saw a half-written queue file"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        data = path.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf") and data.endswith(b"\r\n")
        table = QueueFile(path).read()
        got = {r["ID"]: r for _, r in table.rows()}
        assert list(got) == [f"m{i}" for i in range(1, 7)], "rows were lost"
        assert table.header[:5] == header.split(",")
        assert got["m1"]["Notes"] in ("A" * 120_000, "B" * 50_000)
        assert got["m3"]["Notes"] == got["m1"]["Notes"].lower()
        assert got["m5"]["Notes"] == got["m1"]["Notes"]
        assert all(got[f"m{i}"]["Notes"] == "" for i in (2, 4, 6))
        assert got["m6"]["TrainingCommand"] == "python t.py --i 6"
        seen_notes.add(got["m1"]["Notes"][0])
    assert seen_notes, "the writer never wrote"


@pytest.mark.parametrize("header,typos", [
    ("ID,Name,TrainingCommand,GPU,PretrainedModelID,Priorty",
     [("GPU", "GPUs"), ("Priorty", "Priority")]),
    ("ID,TrainingCommand,Retires,Kind,Confg", [("Retires", "Retries"), ("Confg", "Config")]),
    ("ID,TrainingCommand,GPUs,GPU", []),             # the real one is there: GPU is theirs
    ("ID,TrainingCommand,lr,Epochs,Owner,notes", []),  # their own columns; notes is Notes
])
def test_a_near_miss_of_a_known_column_is_a_probable_typo(header, typos):
    assert column_typos(header.split(",")) == typos


def test_a_column_declared_the_users_own_is_not_a_typo():
    assert column_typos(["ID", "TrainingCommand", "GPU", "Priorty"], own=["gpu"]) == [
        ("Priorty", "Priority")]


def test_the_driver_says_a_misspelled_column_before_anything_runs(tmp_path, caplog, capsys):
    """Priorty and GPU were silently user columns: the rows ran with default GPUs and no
    order. Now the driver says which column each probably meant, once, before a row runs;
    `status` says it under the table."""
    from orchestrator.cli import main
    from tests.fake_pool import FakePool
    from tests.unit.test_loop import run

    path = write(tmp_path / "q.csv", "ID,Name,TrainingCommand,GPU,Priorty\n"
                 "a,x,true,0.5,1\nb,y,true,0.5,9\n")
    with caplog.at_level("WARNING"):
        r = run(path, FakePool())
    said = [m for m in caplog.messages if "did you mean" in m]
    assert said == [
        f"{path} line 1: column 'GPU' is probably GPUs (did you mean GPUs?): its cells are not "
        "read as GPUs — rename the column, or list it in own_columns in [general] if it is "
        "your own",
        f"{path} line 1: column 'Priorty' is probably Priority (did you mean Priority?): its "
        "cells are not read as Priority — rename the column, or list it in own_columns in "
        "[general] if it is your own"]
    assert r.code == 0
    capsys.readouterr()
    assert main(["status", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notices"] == said
    assert main(["status", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: " in out and "column 'Priorty' is probably Priority" in out
    assert "list it in own_columns in [general]" in out, "shown literally, not as markup"


def test_a_header_in_another_case_is_the_column_it_names(tmp_path):
    """`PretrainedModelID` is PretrainedModelId: the child waits for its parent."""
    from tests.fake_pool import FakePool
    from tests.unit.test_loop import run

    path = write(tmp_path / "q.csv", "id,TrainingCommand,PretrainedModelID,gpus\n"
                 "p,true,,0.5\nc,true,p,0.5\n")
    pool = FakePool()
    run(path, pool)
    assert [(launch.job_id, shape.gpus) for launch, shape in pool.launches] == [
        ("p", 0.5), ("c", 0.5)], "GPUs read from the gpus column"
    rows = {r["ID"]: r for _, r in QueueFile(path).read().rows()}
    assert "p is Done but left no weight file" in rows["c"]["Error"], "c waited for p"

"""The report as a researcher sees it: opened in headless Chromium at 1400 and 1920 px
with 30 and 300 runs, no column may scroll off the window and no run may be taller than
one line; sorting, filtering and a run's details work. (Chromium comes with `make test`,
from the system's package manager; without it this test says it did not run.)"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import subprocess
import time

import pytest

from orchestrator.store.record import RunRecord
from orchestrator.views.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(make test installs it with apt-get)")

# what the page says of itself once loaded: its width against the window's, the
# tallest run's height against one line of text
MEASURE = """<script>window.addEventListener('load',function(){
var rows=document.querySelectorAll('table.runs tr.run'),tall=0;
rows.forEach(function(r){tall=Math.max(tall,r.getBoundingClientRect().height);});
var td=document.querySelector('table.runs tr.run td');
document.body.setAttribute('data-probe',JSON.stringify({page:document.documentElement.scrollWidth,
 window:window.innerWidth,tallest:tall,line:parseFloat(getComputedStyle(td).fontSize)*1.25,
 rows:rows.length}));});</script>"""
# a user's clicks: sort by lr (twice: descending), open the first run's details, filter
USE = """<script>window.addEventListener('load',function(){
var heads=Array.prototype.slice.call(document.querySelectorAll('table.runs th'));
var lr=heads.filter(function(h){return h.textContent==='lr';})[0],col=heads.indexOf(lr);
function column(){return Array.prototype.filter.call(document.querySelectorAll('table.runs tr.run'),
 function(r){return r.style.display!=='none';}).map(function(r){return r.cells[col].textContent;});}
lr.click();var up=column();lr.click();var down=column();
var first=document.querySelector('table.runs tr.run');first.querySelector('button.open').click();
var details=first.nextElementSibling;
var st=document.getElementById('run-status');st.value='Crash';st.dispatchEvent(new Event('change'));
var crashed=column().length;st.value='';st.dispatchEvent(new Event('change'));
var q=document.getElementById('run-filter');q.value='imagenet-b';
q.dispatchEvent(new Event('input'));
var svg=document.getElementById('compare-plot'),first=svg.getAttribute('data-runs');
var pick=document.querySelector('input.pick:not(:checked)');pick.click();
var key=document.getElementById('compare-key');key.value='loss';
key.dispatchEvent(new Event('change'));
document.body.setAttribute('data-probe',JSON.stringify({up:up,down:down,
 opened:!details.hidden&&details.className==='more',details:details.textContent,
 crashed:crashed,found:column().length,first:first,picked:pick.value,
 drawn:svg.getAttribute('data-runs'),lines:svg.querySelectorAll('polyline').length,
 ylabel:svg.textContent}));});</script>"""


def write_queue(root, n: int):
    """``n`` runs as a night of them leaves them: eight hyperparameters that vary (own
    columns and command flags), long names and commands, many-line errors, notes."""
    rnd = random.Random(n)
    record = RunRecord(root / "runs" / "registry.db")
    rows, crashed, start = [], 0, time.time() - 8 * 3600
    for i in range(n):
        job_id = f"r{i:03d}"
        status = ["Done", "Done", "Crash", "Training", ""][i % 5]
        lr, bs = rnd.choice([1e-4, 3e-4, 1e-3, 1e-2]), rnd.choice([16, 32, 64])
        run_dir = root / "runs" / job_id / "attempt-1"
        run_dir.mkdir(parents=True)
        if status:
            lines = [{"step": k, "loss": 2 / (1 + k * lr * 300), "val_acc": 0.25 + k * lr}
                     for k in range(12)]
            (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
            record.begin_attempt("q", job_id, 1, status="Queued",
                                 log_path=str(run_dir / "run.log"))
            record.update_attempt("q", job_id, 1, status=status, started=start + 60 * i,
                                  ended=start + 60 * i + 754, node="gpu-box-with-a-long-name",
                                  gpus=[i % 4], metrics=lines[-1])
        crashed += status == "Crash"
        rows.append({
            "ID": job_id, "Name": f"resnet50 lr={lr:g} bs={bs} with a rather long name {i}",
            "TrainingCommand": f"python train.py --lr {lr:g} --batch-size {bs} --epochs 20 "
                               f"--data /datasets/imagenet-{'ab'[i % 2]} --seed {i % 5} "
                               f"--warmup {rnd.choice([0, 500])} --label-smoothing 0.{i % 3}",
            "TrainingCheck": status, "GPUs": "0.5",
            "Error": ("oom: CUDA out of memory. Tried to allocate 2.00 GiB — lower the batch "
                      "size\nTraceback (most recent call last):\n  File train.py\n" * 3)
            if status == "Crash" else "",
            "Notes": "the baseline sweep over lr and batch size, second week" if i % 4 else "",
            "dropout": str(rnd.choice([0.0, 0.1, 0.3])), "optimizer": rnd.choice(["adamw", "sgd"]),
            "scheduler_name_that_is_long": rnd.choice(["cosine-with-restarts", "linear"]),
            "PretrainedModelId": f"r{i - 1:03d}" if i % 7 == 3 else ""})
    record.close()
    with open(root / "q.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return build_report(root / "q.csv", root / "runs" / "registry.db", "q",
                        root / "report.html", metric="val_acc"), crashed


def open_in_chromium(page, script: str, width: int) -> dict:
    probe = page.with_name(f"probe-{width}.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"),
                     encoding="utf-8")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--window-size={width},1000", "--virtual-time-budget=5000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, f"the page did not load in chromium: {dom[:500]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.parametrize("n", [30, 300])
def test_every_column_fits_the_window_and_every_run_is_one_line(tmp_path, n):
    page, _ = write_queue(tmp_path, n)
    html = page.read_text(encoding="utf-8")
    assert html.count('<th class="param"') == 8, "the hyperparameters that vary, at most 8"
    for width in (1400, 1920):
        seen = open_in_chromium(page, MEASURE, width)
        assert seen["rows"] == n
        assert seen["page"] <= seen["window"], f"{width} px: a column scrolls off ({seen})"
        assert seen["tallest"] <= 2 * seen["line"], f"{width} px: a run is taller ({seen})"


def test_sorting_filtering_and_details_work_in_the_browser(tmp_path):
    page, crashed = write_queue(tmp_path, 30)
    seen = open_in_chromium(page, USE, 1400)
    up = [float(v) for v in seen["up"]]
    assert up == sorted(up) and [float(v) for v in seen["down"]] == sorted(up, reverse=True)
    assert seen["opened"] and "python train.py" in seen["details"]
    assert "Traceback" in seen["details"] and "gpu-box-with-a-long-name" in seen["details"]
    assert seen["crashed"] == crashed
    assert seen["found"] == 15, "the filter reads the details too (the command's --data)"
    best = re.findall(r'<td class="id">(.*?)</td>', page.read_text(encoding="utf-8"))[:5]
    assert seen["first"].split(",") == sorted(best), "the 5 best runs' curves to begin with"
    assert seen["drawn"].split(",") == sorted([*best, seen["picked"]]) and seen["lines"] == 6
    assert "loss" in seen["ylabel"], "the metric chosen"

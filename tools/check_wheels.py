"""Can every pinned dependency install from binary wheels on Python 3.10, 3.12 and 3.13?

Only 3.11 runs on the development machine (its package manager has no other interpreter
and nothing may download one), so installability on the other versions is checked by
asking pip to resolve each pin of pyproject.toml (core, every extra, the test tools) as
a binary wheel for that Python on manylinux x86_64: ``pip install --dry-run --no-deps
--only-binary=:all: --python-version X``. Prints a line per version; names each pin
that has no wheel. Needs the package index (it is ``make lint``'s, not the suite's).

    python tools/check_wheels.py [--python 3.10 3.12 3.13]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib  # novermin - tomli below before 3.11
except ModuleNotFoundError:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
#: Pins published only as a source archive that is pure Python (pip builds it anywhere):
#: checked as that archive instead, and named with the reason.
SDIST_OK = {"rouge-score": "pure Python, published only as an sdist: pip builds it on any "
                           "version"}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "linux_x86_64")


def pins(version: str) -> list[str]:
    """``name==version`` of every pinned requirement that applies to Python ``version``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        found += [r for r in extra if "==" in r]
    out = []
    for req in found:
        spec, _, marker = req.partition(";")
        if marker.strip() and not _applies(marker, version):
            continue
        name, _, pinned = spec.partition("==")
        out.append(f"{name.split('[')[0].strip()}=={pinned.strip()}")
    return sorted(set(out))


def _applies(marker: str, version: str) -> bool:
    """``python_version < '3.11'`` (and ``>=``, ``<=``, ``>``, ``==``) for ``version``."""
    ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
           ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}
    have = tuple(map(int, version.split(".")))
    for op, wanted in re.findall(r"python_version\s*(<=|>=|==|<|>)\s*['\"]([\d.]+)['\"]",
                                 marker):
        if not ops[op](have, tuple(map(int, wanted.split(".")))):
            return False
    return True


def resolves(version: str, requirements: list[str], target: str,
             binary: bool = True) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet",
           "--only-binary=:all:" if binary else "--no-binary=:all:",
           "--python-version", version, "--implementation", "cp",
           "--ignore-installed", "--no-cache-dir", "--target", target,
           *(f"--platform={p}" for p in PLATFORMS), *requirements]
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("ERROR")]
    why = next((ln for ln in lines if "Requires-Python" in ln), lines[-1] if lines else "")
    return done.returncode == 0, (why or done.stderr.strip()[-300:])[:400]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", nargs="+", default=["3.10", "3.12", "3.13"])
    args = p.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as target:
        for version in args.python:
            wanted = pins(version)
            sdists = [r for r in wanted if r.split("==")[0] in SDIST_OK]
            wheels = [r for r in wanted if r not in sdists]
            ok, _ = resolves(version, wheels, target)
            missing = [] if ok else [(r, why) for r in wheels
                                     for good, why in [resolves(version, [r], target)]
                                     if not good]
            for req in sdists:
                good, why = resolves(version, [req], target, binary=False)
                if not good:
                    missing.append((req, why))
            failed = failed or bool(missing)
            print(f"Python {version}: {len(wheels) - len(missing)} of {len(wheels)} pins "
                  "have binary wheels" + "".join(
                      f"; {r} is an sdist ({SDIST_OK[r.split('==')[0]]})" for r in sdists
                      if all(r != m for m, _ in missing)))
            for req, why in missing:
                print(f"  no: {req}: {why}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Two ``results/`` folders of the workflow, compared file by file, timings aside.

A change that should not change results (a redesign) is checked by running the demo
before and after it and comparing the two folders. Files are compared byte for byte;
where they differ, text outputs are compared again with what legitimately varies between
runs masked:

* measured speeds and times (JSON keys and TSV columns such as ``seconds``,
  ``spectra_per_second``, ``cpu_seconds``, ``peak_rss_mb``, ``seconds_*``);
* absolute paths of the run's own folder (mzTab ``MTD`` locations and settings).

Binary files (checkpoints, plots, parquet) are reported as differing or not, byte for
byte. Usage::

    python benchmarks/compare_results.py BEFORE/results AFTER/results

Exit status 1 when a text output differs beyond the masked fields, or a file is missing.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path

#: JSON keys and TSV columns whose values are measurements of time, speed or memory.
TIMING = re.compile(
    r"(^|_)(seconds|spectra_per_second|cpu_seconds|peak_rss_mb|wall_s|s|h_m_s|max_rss|"
    r"max_vms|max_uss|max_pss|io_in|io_out|mean_load|cpu_time)($|_)"
)
TEXT_SUFFIXES = {".json", ".tsv", ".csv", ".mztab", ".txt", ".yaml"}


def _mask_json(value: object) -> object:
    if isinstance(value, dict):
        return {k: ("<timing>" if TIMING.search(k) else _mask_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_json(v) for v in value]
    return value


def _mask_table(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t"))
    return [{k: ("<timing>" if TIMING.search(k or "") else v) for k, v in r.items()} for r in rows]


def _mask_mztab(text: str, root: Path) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.startswith("MTD") and ("location" in line or "setting" in line):
            line = line.replace(str(root.resolve().parent), "<run folder>")
        out.append(line)
    return out


def masked(path: Path, root: Path) -> object:
    """The file's content with run-to-run variation masked (see the module description)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return _mask_json(json.loads(text))
    if path.suffix == ".tsv" and not path.name.endswith(".mztab"):
        return _mask_table(text)
    if path.suffix == ".mztab":
        return _mask_mztab(text, root)
    return text


def compare(before: Path, after: Path) -> tuple[list[str], bool]:
    """Lines of the report, and whether the folders agree beyond the masked fields."""
    lines, agree = [], True
    names = sorted({p.relative_to(before) for p in before.rglob("*") if p.is_file()})
    names_after = sorted({p.relative_to(after) for p in after.rglob("*") if p.is_file()})
    for name in sorted(set(names) | set(names_after)):
        first, second = before / name, after / name
        if not first.exists() or not second.exists():
            lines.append(f"only in {'after' if not first.exists() else 'before'}: {name}")
            agree = False
            continue
        if first.read_bytes() == second.read_bytes():
            continue
        if first.suffix in TEXT_SUFFIXES and not any(p.endswith("work") for p in name.parts):
            same = masked(first, before) == masked(second, after)
            lines.append(f"{'same but timings/paths' if same else 'DIFFERENT'}: {name}")
            agree &= same
        else:
            lines.append(f"binary or work file differs: {name}")
    return lines, agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    lines, agree = compare(args.before, args.after)
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.write("results agree (timings and paths aside)\n" if agree else "results DIFFER\n")
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()

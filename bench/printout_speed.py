"""Printout speed: tools/printout.py's whole command line (read MAT, measure, draw, PNG + PDF + thumbnail per record,
printouts.json and index.html) on N records, with every core and with one.

    python bench/printout_speed.py [--records 1000] [--src DIR] [--workers 0,1] [--pdf each] [--json PATH]

The records are --src's *.mat (default: the embedded sample's 80 real PTB-XL records, train and test), cycled to
--records names (symlinks in a temp folder), so any count can be drawn without data. Prints records/s and the CPU
seconds per page (the command's own and its workers'), and the machine's load average, since the cores are
shared here; --json writes the figures.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--src", default="", help="a folder of MAT records (default: dataset/sample's train and val)")
    p.add_argument("--workers", default="0", help="comma-separated --workers values to time (0: every core)")
    p.add_argument("--pdf", default="each", choices=("each", "all", "none"))
    p.add_argument("--json", default="")
    a = p.parse_args()
    srcs = sorted(Path(a.src).glob("*.mat")) if a.src else sorted((ROOT / "dataset/sample/train").glob("*.mat")) + \
        sorted((ROOT / "dataset/sample/val").glob("*.mat"))
    tmp = Path(tempfile.mkdtemp(prefix="bench_printout_"))
    results = []
    try:
        recs = tmp / "records"
        recs.mkdir()
        for i in range(a.records):
            src = srcs[i % len(srcs)]
            (recs / f"r{i:05d}_{src.stem}.mat").symlink_to(src.resolve())
        for w in [int(x) for x in a.workers.split(",")]:
            out = tmp / f"out_{w}"
            load = os.getloadavg()
            cpu0, t = children_cpu(), time.perf_counter()
            subprocess.run([sys.executable, "tools/printout.py", "--records", str(recs), "--out", str(out),
                            "--workers", str(w), "--pdf", a.pdf], cwd=ROOT, check=True, capture_output=True)
            wall, cpu = time.perf_counter() - t, children_cpu() - cpu0
            summary = json.loads((out / "printouts.json").read_text())["summary"]
            size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
            results.append({"workers": summary["workers"], "records": a.records, "wall_s": round(wall, 1),
                            "records_per_s": round(a.records / wall, 2), "drawing_records_per_s": summary["records_per_second"],
                            "cpu_s_per_record": round(cpu / a.records, 3), "load_before": [round(x, 1) for x in load],
                            "mb_per_record": round(size / a.records / 1e6, 3)})
            shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{a.records} records ({len(srcs)} distinct real records cycled), --pdf {a.pdf}, {os.cpu_count()} cores")
    print(f"{'workers':>8}{'wall s':>9}{'records/s':>11}{'CPU s/record':>14}{'MB/record':>11}   load average before")
    for r in results:
        print(f"{r['workers']:>8}{r['wall_s']:>9}{r['records_per_s']:>11}{r['cpu_s_per_record']:>14}"
              f"{r['mb_per_record']:>11}   {r['load_before']}")
    if a.json:
        Path(a.json).write_text(json.dumps({"records": a.records, "pdf": a.pdf, "cores": os.cpu_count(),
                                            "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

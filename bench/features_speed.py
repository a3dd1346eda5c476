"""How long the ECG measurements take per record (utils/ecg/measurements.py), and neurokit2's R peaks + delineation
beside them when it is installed (`pip install neurokit2 PyWavelets`; not a dependency of the pipeline).

    python bench/features_speed.py [--records N] [--data-dir dataset/sample] [--json PATH]

Records are read first, so only measuring is timed; one thread (as train.py measures: one record at a time).
"""
import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.ecg.io import FS, LEADS, read_record  # noqa: E402
from utils.ecg.measurements import FEATURE_NAMES, extract_features  # noqa: E402


def per_record(fn, signals):
    t = time.perf_counter()
    for s in signals:
        fn(s)
    return (time.perf_counter() - t) / len(signals)


def neurokit_one_lead(nk):
    def run(sig):
        x = nk.ecg_clean(sig[LEADS.index("II")], sampling_rate=FS)
        _, info = nk.ecg_peaks(x, sampling_rate=FS)
        nk.ecg_delineate(x, info["ECG_R_Peaks"], sampling_rate=FS, method="dwt")
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(ROOT / "dataset" / "sample"))
    p.add_argument("--records", type=int, default=40)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    paths = sorted(Path(a.data_dir).glob("train/*.mat"))[:a.records]
    if not paths:
        p.error(f"no records in {Path(a.data_dir) / 'train'}")
    signals = [read_record(x) for x in paths]
    ours = per_record(extract_features, signals)
    res = {"records": len(signals), "ours_ms_per_record": ours * 1000, "n_features": len(FEATURE_NAMES)}
    print(f"ours: {ours * 1000:.1f} ms per record (12 leads, {len(FEATURE_NAMES)} measurements), "
          f"{ours * 1000:.0f} s per thousand records")
    try:
        import neurokit2 as nk
    except ImportError:
        print("neurokit2 not installed: pip install neurokit2 PyWavelets to compare")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            one = per_record(neurokit_one_lead(nk), signals)
        res.update(neurokit2_version=nk.__version__, neurokit2_one_lead_ms=one * 1000)
        print(f"neurokit2 {nk.__version__}: {one * 1000:.1f} ms per record for ONE lead (clean, R peaks, wavelet "
              f"delineation): {one / ours:.1f}x ours for one lead, {12 * one / ours:.0f}x for twelve")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
        print(f"figures: {a.json}")


if __name__ == "__main__":
    main()

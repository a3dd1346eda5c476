"""predict.py --images: pictures of printed ECGs digitised, then answered by trained models (a signal and a picture
model fused), one row per picture, with printouts beside each source picture."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

import predict
from utils.ecg.io import LEADS, read_record
from utils.inputs.printout import Sheet, ecg_image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "dataset" / "sample" / "val"
RECORDS = ("ptbxl_00108", "ptbxl_05308", "ptbxl_09549")


def test_pictures_are_digitised_and_answered_one_row_each(tiny_signal, tiny_trained, tmp_path):
    images = tmp_path / "pictures"
    images.mkdir()
    for name in RECORDS:  # the project's own printed look, 3 x 4 + lead II, at 6 px/mm (152 dpi), as a JPEG scan
        ecg_image(read_record(SAMPLE / f"{name}.mat"), Sheet(px_per_mm=6)).convert("RGB").save(
            images / f"{name}.jpg", quality=90)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 600, 3), np.uint8)).save(images / "noise.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (signal_out, _), (picture_out, _) = tiny_signal, tiny_trained
    out = tmp_path / "answer.csv"
    report = predict.main(["--images", str(images), "--model", str(signal_out / "best_model"),
                           str(picture_out / "best_model"), "--out", str(out), "--report", str(tmp_path / "r.json"),
                           "--printouts", str(tmp_path / "prints"), "--printout-pdf", "none", "--num-workers", "2"])

    answer = pd.read_csv(out)
    assert list(answer["name"]) == sorted([*RECORDS, "noise", "broken"])  # every picture one row
    assert set(answer["tag"]) <= {0, 1}
    fallback = {f["name"]: f["reason"] for f in report["fallback"]}
    assert set(fallback) == {"noise", "broken"}
    assert "picture not read (refused" in fallback["noise"] and "picture not read (failed" in fallback["broken"]
    assert report["images"]["n_read"] == len(RECORDS) and report["n_predicted"] == len(RECORDS)

    digitized = tmp_path / "answer_digitized"
    csv = pd.read_csv(digitized / "val" / "digitize.csv", keep_default_na=False)
    assert dict(zip(csv["name"], csv["status"])) == {**{n: "ok" for n in RECORDS}, "noise": "refused",
                                                      "broken": "failed"}
    kept = read_record(digitized / "val" / f"{RECORDS[0]}.mat", gaps="keep")
    lead_i, lead_ii = kept[LEADS.index("I")], kept[LEADS.index("II")]
    assert np.isfinite(lead_i[100:1150]).all() and np.isnan(lead_i[1400:]).all()  # printed 0-2.5 s only
    assert np.isfinite(lead_ii[100:4900]).mean() > 0.95  # the rhythm strip
    # the picture model read the records drawn with its own settings (64 px, as the fixture trained it)
    drawn = json.loads((digitized / "pictures" / "render_config.json").read_text())
    assert drawn == json.loads((picture_out / "best_model" / "model.json").read_text())["input"]["render_config"]
    assert Image.open(digitized / "pictures" / "val" / f"{RECORDS[0]}.png").size == (drawn["size"],) * 2

    prints = tmp_path / "prints"
    for name in RECORDS:  # each record as read beside its picture
        both, page = Image.open(prints / f"{name}_paper.jpg"), Image.open(prints / f"{name}.png")
        assert both.height == page.height and both.width > page.width
    assert "beside the paper" in (prints / "index.html").read_text()

"""Paper ECGs: pages generated from records (with their ground truth) and digitised back into records.

The contract between the generator (utils/paper/generate.py, distort.py; tools/make_paper.py) and the digitiser
(utils/paper/digitize.py; tools/digitize.py), and what bench/digitize_accuracy.py scores:

A generated page `<stem>` is
- `<stem>.png` or `<stem>.jpg`: the picture;
- `<stem>.json` (`PageTruth`): `record` (the source record's name), `layout` (layouts.LAYOUTS key), `speed` (mm/s),
  `gain` (mm/mV), `px_per_mm` (of the drawing before any distortion), `seconds_shown` (the time one row spans),
  `distortions` ({kind: level}), `size` ([width, height] px of the final picture), `seed`, and `leads`: one entry per
  printed stretch, {"lead", "row", "col", "t0", "t1" (seconds of the recording), "box" ([x0, y0, x1, y1] px in the
  final picture: the axis-aligned box of that stretch's cell after distortion)};
- `<stem>.mat`: `ecgdata`, the source record (12, 5000) mV, as the competition reads it;
- `<stem>_mask.png`: 8-bit, 255 where trace ink is, in the final picture's geometry.

A digitised page: `OUT/<stem>.mat` (`ecgdata` (12, 5000) float32 mV at 500 Hz, the standard lead order, each
printed stretch at its true time, NaN where a lead's stretch is not printed or could not be read) and one row of
`OUT/digitize.csv`: DIGITIZE_COLUMNS.

The layer may import the base, ecg and inputs (the printout renderer) layers; nothing loads Paddle.
"""
DIGITIZE_COLUMNS = ("name", "status", "speed", "gain", "px_per_mm", "rotation", "layout", "quality", "error")
STATUSES = ("ok", "refused", "failed")  # read; not an ECG page or a layout/scale it does not read; unreadable

"""What the pipeline shows a person: one printed page per record (the ECG on its grid, its measurements and the
answer, utils/report/pages.py) and an index of the pages (utils/report/index.py). Built on utils/inputs/printout.py
(the ECG paper) and utils/ecg (records, measurements, labels); no Paddle, no model: predict.py hands it the
answers it decided."""

"""When validation records are too few to choose by.

A threshold tuned for the best F1 on a handful of records, or a best_model crowned by one lucky evaluation, says
more about those records than about the model (on the sample's 6 validation records the F1 swings from 0 to 1
between evaluations). Below MIN_RECORDS the scripts therefore tune nothing: thresholds stay at 0.5, best_model
is the latest evaluated model, and the log, model.json and the figures say it was a smoke check.
"""
MIN_RECORDS = 30
DEFAULT = 0.5  # the threshold of an untuned model (a probability's natural cut)


def enough(n):
    """Are `n` validation records enough to tune thresholds and choose a model on?"""
    return n >= MIN_RECORDS


def smoke_note(n):
    """What a log line says of a choice made on `n` records."""
    return "" if enough(n) else f"{n} records < {MIN_RECORDS}: a smoke check, thresholds {DEFAULT}, nothing tuned"


def smoke_banner(n):
    """What a figure of a training run validated on `n` records says above its plots ("" when they are enough)."""
    return "" if enough(n) else (f"Smoke check, not a measurement: {n} validation records (< {MIN_RECORDS}), "
                                 f"thresholds {DEFAULT}, the latest model kept")

"""PTB-XL `scp_codes` -> competition labels (Task 1 tag, Task 2 classes)."""
import ast

# 1-based Task 2 class indices (see utils.ecg_io.CLASS_NAMES).
RHYTHM_CLASSES = {"SBRAD": 2, "STACH": 3, "SARRH": 4, "AFIB": 5, "PVC": 6, "PAC": 7, "1AVB": 8, "CRBBB": 9}
T_WAVE_CODES = {"NDT", "NT_", "INVT", "LOWT", "TAB_"}  # class 10
ST_CODES = {"STD_", "STE_", "NST_"}  # class 11
NORMAL_CODES = {"NORM", "SR"}
OTHER_CLASS = 12


def parse_scp_codes(text):
    """`"{'NORM': 100.0, 'SR': 0.0}"` -> {'NORM': 100.0, 'SR': 0.0}."""
    codes = ast.literal_eval(text) if isinstance(text, str) else text
    if not isinstance(codes, dict):
        raise ValueError(f"scp_codes is not a dict: {text!r}")
    return codes


def map_scp_codes(codes):
    """Map a record's SCP codes to (tag, classes). Every key counts, whatever its likelihood.

    Normal (tag 0, class 1) means NORM present and nothing but NORM and SR; everything else is abnormal.
    """
    keys = set(codes)
    if "NORM" in keys and keys <= NORMAL_CODES:
        return 0, [1]
    classes = set()
    for code in keys:
        if code in RHYTHM_CLASSES:
            classes.add(RHYTHM_CLASSES[code])
        elif code in T_WAVE_CODES:
            classes.add(10)
        elif code in ST_CODES:
            classes.add(11)
        elif code not in NORMAL_CODES:
            classes.add(OTHER_CLASS)
    # An abnormal record with no mapped code (e.g. 'SR' alone, no NORM) still needs a class.
    return 1, sorted(classes) or [OTHER_CLASS]

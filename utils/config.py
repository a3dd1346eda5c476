"""Command-line overrides for the UPPER_CASE constants of a script's configuration block (nanoGPT style).

`IMAGE_SIZE = 640` becomes `--image-size 640`; the flag's type is the constant's type.
"""
import argparse
import re


def _bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{text}'")


def flag_name(constant):
    return "--" + constant.lower().replace("_", "-")


def constant_comments(source_file):
    """{CONSTANT: its trailing comment} from a script's `CONSTANT = value  # comment` lines, for --help."""
    with open(source_file) as f:
        return dict(re.findall(r"^([A-Z][A-Z0-9_]*) = .*?  # (.*)$", f.read(), flags=re.M))


def parse_config(defaults, argv=None, description=None, source_file=None, choices=None):
    """Parse `argv` against `defaults` ({CONSTANT: value}); return {CONSTANT: value} with overrides applied.
    `source_file`: the script, whose constants' comments become the flags' help."""
    comments, choices = constant_comments(source_file) if source_file else {}, choices or {}
    p = argparse.ArgumentParser(description=description)
    for key, value in defaults.items():
        text = f"{comments[key]} " if key in comments else ""
        kw = {"default": value, "dest": key, "help": f"{text}(default: {value!r})".replace("%", "%%"),
              "choices": choices.get(key)}
        if isinstance(value, bool):
            p.add_argument(flag_name(key), type=_bool, nargs="?", const=True, metavar="BOOL", **kw)
        elif isinstance(value, list):  # one or more values: --model A B C
            p.add_argument(flag_name(key), type=type(value[0]) if value else str, nargs="+", **kw)
        elif value is None:
            p.add_argument(flag_name(key), type=str, **kw)
        else:
            p.add_argument(flag_name(key), type=type(value), **kw)
    return vars(p.parse_args(argv))


BLOCK_START, BLOCK_END = "# -- configuration", "# ----"


def block_names(source_file):
    """NAMEs assigned at column 0 between the line starting BLOCK_START and the next starting BLOCK_END."""
    with open(source_file) as f:
        lines = f.read().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(BLOCK_START)), len(lines))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(BLOCK_END)), None)
    if end is None:
        raise ValueError(f"{source_file}: no configuration block (a '{BLOCK_START} ...' line, the constants, "
                         f"then a '{BLOCK_END}...' line): its constants are the script's flags")
    return [m.group(1) for line in lines[start + 1:end] if (m := re.match(r"([A-Z][A-Z0-9_]*)\s*=(?!=)", line))]


def script_constants(namespace):
    """{CONSTANT: current value} for the constants of the configuration block of the script whose globals are
    `namespace`, in order. Only that block: imported or helper constants must not become flags."""
    return {k: namespace[k] for k in block_names(namespace["__file__"])}

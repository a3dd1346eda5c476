"""Command-line overrides for the UPPER_CASE constants at the top of a script (nanoGPT style).

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
        elif value is None:
            p.add_argument(flag_name(key), type=str, **kw)
        else:
            p.add_argument(flag_name(key), type=type(value), **kw)
    return vars(p.parse_args(argv))


def script_constants(namespace):
    """The UPPER_CASE constants of a module's globals, in definition order."""
    return {k: v for k, v in namespace.items() if k.isupper() and not k.startswith("_") and isinstance(v, (bool, int, float, str, type(None)))}

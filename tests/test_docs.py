"""Every `python ...` command line quoted in README.md and docs/ runs as written: it names a script of this
repository and only flags that script accepts. Placeholders (`1|2`, `DIR`, `[--flag X]`, `...`) are fine: only the
script and the flag names are checked. A script's flags are read from its source, as argparse and
utils/config.py will define them: the constants of its configuration block (nanoGPT style) and the flag strings
it names; `test_flags_read_from_source_are_those_of_help` checks that reading against --help."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from utils.config import block_names, flag_name

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = re.compile(r"^(?:\S*/)?python3?$")  # python, python3, .venv/bin/python, .venv26/bin/python
LAUNCHER = "paddle.distributed.launch"  # `python -m paddle.distributed.launch [its flags] train.py [train.py's flags]`


def script_flags(path):
    """The flags `path` accepts, read from its source: its configuration block's constants (utils/config.py), else
    its add_argument calls, else (a script reading sys.argv itself) every flag string it names."""
    text, flags = path.read_text(), {"--help", "-h"}
    try:
        return flags | {flag_name(k) for k in block_names(path)}
    except ValueError:
        pass  # no configuration block
    calls = re.findall(r"add_argument\(([^)]*)", text)
    if calls:
        return flags | {f for call in calls for f in re.findall(r"""["'](--[a-z0-9][a-z0-9_-]*)["']""", call)}
    return flags | set(re.findall(r"""["'](--[a-z0-9][a-z0-9-]*)["']""", text))


def commands(text):
    """(line number, command text) of every python command line in a Markdown text: in code blocks (fenced or
    indented, with their continuation lines: a usage line wrapped onto more-indented lines, or a trailing \\)
    and in inline code spans."""
    lines, found = text.splitlines(), []
    i = 0
    while i < len(lines):
        line = lines[i]
        start = re.match(r"^(\s*)(?:\$ )?((?:\S*/)?python3?\s.*)$", line)
        if start and (line.startswith("    ") or _in_fence(lines, i)):
            indent, cmd = len(start.group(1)), start.group(2)
            while i + 1 < len(lines) and (cmd.endswith("\\") or _continues(lines[i + 1], indent)):
                i += 1
                cmd = cmd.rstrip("\\") + " " + lines[i].strip()
            found.append((i + 1, cmd))
        else:
            found += [(i + 1, m) for m in re.findall(r"`((?:\S*/)?python3? [^`]+)`", line)]
        i += 1
    return found


def _in_fence(lines, i):
    return sum(1 for line in lines[:i] if line.lstrip().startswith("```")) % 2 == 1


def _continues(line, indent):
    """A wrapped usage line: more indented than the command and starting with a flag or an optional group."""
    stripped = line.lstrip()
    return len(line) - len(stripped) > indent and stripped[:1] in ("[", "-")


def problems(cmd):
    """What is wrong with one command line ([] when it runs as written)."""
    found = []
    for part in re.split(r"\s+(?:&&|;|\|\||\|)\s+", cmd):
        words = _words(part)
        if not words or not PYTHON.match(words[0]):
            continue
        args = words[1:]
        if args[:2] == ["-m", LAUNCHER]:
            args = args[2:]
            while args and not args[0].endswith(".py"):  # the launcher's own flags
                args = args[1:]
        elif args[:1] in (["-m"], ["-c"]) or not args:
            continue  # a module (pytest, venv, pip) or inline code: not one of our scripts
        script = ROOT / args[0]
        if not script.is_file():
            found.append(f"{args[0]}: no such script")
            continue
        accepted, owner = script_flags(script), args[0]
        for word in args[1:]:
            flag = word.strip("[]()").split("=")[0]
            if flag == "--":  # what follows is handed on to train.py (train_kfold and the benches that run it)
                accepted, owner = script_flags(ROOT / "train.py"), f"{args[0]} -- (train.py)"
            elif flag.startswith("--") and flag not in accepted and "|" not in flag:
                found.append(f"{owner}: no flag {flag}")
    return found


def _words(text):
    try:
        return shlex.split(text)
    except ValueError:  # an unbalanced quote in a usage line
        return text.split()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_command_names_a_script_and_its_flags(doc):
    cmds = commands(doc.read_text())
    bad = [f"{doc.name}:{n}: {p}  <- {cmd}" for n, cmd in cmds for p in problems(cmd)]
    assert not bad, "\n".join(bad)


def test_the_readme_quotes_the_main_job_and_the_tests():
    cmds = [c for _, c in commands((ROOT / "README.md").read_text())]
    assert any("tools/run_sample.py" in c for c in cmds) and any("-m pytest" in c for c in cmds)
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250  # for users: the rest lives in docs/


def test_the_check_finds_what_is_wrong():
    text = ("Run it:\n\n    python train.py --arch resnet1d --data-dir DIR [--task 1|2]\n"
            "                    [--no-such-flag N]\n\nor `python tools/nope.py --x`, or\n\n"
            "```\n.venv/bin/python predict.py --model A B --out answer.csv && python -m pytest -q tests\n```\n"
            "and `python3 .ci/lock --check LOCK` and `python -m paddle.distributed.launch --nproc_per_node 2 "
            "train.py --iters 5 --itres 5` and `python tools/train_kfold.py --num-folds 3 -- --arch features --sede 1`\n")
    found = {c: problems(c) for _, c in commands(text)}
    assert [p for ps in found.values() for p in ps] == [
        "train.py: no flag --no-such-flag", "tools/nope.py: no such script", "train.py: no flag --itres",
        "tools/train_kfold.py -- (train.py): no flag --sede"], found
    assert len(found) == 6


@pytest.mark.parametrize("script", ["process.py", "tools/convert_ptbxl.py"])
def test_flags_read_from_source_are_those_of_help(script):
    """The source reading agrees with argparse itself, for a constants-block script and an argparse one."""
    r = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    helped = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9_-]*)", r.stdout)) | {"-h"}
    assert len(helped) > 5 and helped == script_flags(ROOT / script)


def _anchors(path):
    """The anchors GitHub makes of a Markdown file's headings (lower case, punctuation dropped, spaces to hyphens,
    a repeated heading numbered)."""
    found, seen, fenced = set(), {}, False
    for line in path.read_text().splitlines():
        fenced ^= line.lstrip().startswith("```")
        m = None if fenced else re.match(r"^#{1,6} (.*)$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(doc):
    """Relative links of a Markdown file whose file or heading anchor does not exist."""
    bad = []
    for link in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"^[a-z]+:", link):
            continue  # a web address
        path, _, anchor = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        if not target.exists():
            bad.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            bad.append(f"{link}: no such heading")
    return bad


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_its_file_and_heading(doc):
    assert broken_links(doc) == []


def test_the_link_check_finds_a_broken_link(tmp_path):
    (tmp_path / "a.md").write_text("# A title\n\n## Two words\n\n[ok](#two-words) [ok](b.md#b) [no](#three) "
                                   "[no](c.md) [web](https://example.org/x#y)\n")
    (tmp_path / "b.md").write_text("# B\n")
    assert broken_links(tmp_path / "a.md") == ["#three: no such heading", "c.md: no such file"]

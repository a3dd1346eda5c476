"""index.html of a printouts folder: one row per record with its thumbnail, the answer, the probabilities and (with
the truth) right/wrong; a click on a column's head sorts by it, "only wrong answers" filters to the errors, a click
on a row opens the record's page. Plain HTML and a little JavaScript: no server, no network, nothing loaded but the
folder's own files."""
import html
import json
from urllib.parse import quote

from ..atomic import write_text
from ..scoring.tasks import get_task

SHORT = ("N", "SB", "ST", "SA", "AF", "PVC", "PAC", "IAVB", "RBBB", "TWC", "STC", "O")  # Task 2 column heads

SCRIPT = r"""
(function () {
  "use strict";
  var table = document.getElementById("records");
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  var errorsOnly = document.getElementById("errors-only");
  var shown = document.getElementById("shown");
  var state = {col: -1, dir: 1};

  function key(cell) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent.trim(); }
    if (v === "") { return null; }
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }

  function sortBy(col) {
    state.dir = (state.col === col) ? -state.dir : 1;
    state.col = col;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }   // blanks last, whichever the direction
      if (y === null) { return -1; }
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * state.dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) {
      heads[i].removeAttribute("aria-sort");
    }
    heads[col].setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
  }

  function filter() {
    var only = errorsOnly && errorsOnly.checked, n = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      var hide = only && r.getAttribute("data-wrong") !== "1";
      r.hidden = hide;
      if (!hide) { n++; }
    });
    shown.textContent = n;
  }

  Array.prototype.forEach.call(heads, function (th, i) {
    if (th.classList.contains("sortable")) {
      th.addEventListener("click", function () { sortBy(i); });
    }
  });
  if (errorsOnly) { errorsOnly.addEventListener("change", filter); }
  body.addEventListener("click", function (e) {
    if (e.target.closest("a")) { return; }    // a link opens what it links to
    var row = e.target.closest("tr");
    if (row) { window.location.href = row.getAttribute("data-page"); }
  });
  filter();
})();
"""

STYLE = """
body { font: 14px/1.35 sans-serif; margin: 1em 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
.summary { margin: .3em 0 .8em; }
table { border-collapse: collapse; }
th, td { padding: 3px 7px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: middle; }
th { background: #f4f4f4; position: sticky; top: 0; white-space: nowrap; }
th.sortable { cursor: pointer; }
th.sortable::after { content: " \\2195"; color: #aaa; }
th[aria-sort=ascending]::after { content: " \\25B2"; color: #000; }
th[aria-sort=descending]::after { content: " \\25BC"; color: #000; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr { cursor: pointer; }
tbody tr:hover { background: #f3f7ff; }
tr.wrong td.result { color: #c00; font-weight: bold; }
tr.right td.result { color: #07702d; }
tr.unreadable td.note, tr.fallback td.note { color: #c00; }
img.thumb { width: 212px; height: 150px; display: block; border: 1px solid #ccc; }
.answered { font-weight: bold; }
"""


def _cell(text, sort=None, cls=None, raw=False):
    attrs = ""
    if sort is not None:
        attrs += f' data-sort="{html.escape(str(sort))}"'
    if cls:
        attrs += f' class="{cls}"'
    return f"<td{attrs}>{text if raw else html.escape(str(text))}</td>"


def _num(v, digits=3):
    return ("", "") if v is None else (f"{v:.{digits}f}", f"{v:.6g}")


def write_index(path, rows, summary):
    """Write index.html for printouts.json's `rows` and `summary`; returns its path."""
    task, answers, truth = get_task(summary["task"]), summary["has_answers"], summary["has_truth"]
    heads = [("#", True, "num"), ("page", False, ""), ("record", True, "")]
    if answers:
        heads.append(("answer", True, ""))
        if task.several:  # a column per class, the answered ones bold
            heads += [(s, True, "num") for s in SHORT]
        else:
            heads += [(task.prob_label(0), True, "num"), ("threshold", True, "num")]
    if truth:
        heads.append(("truth", True, ""))
    if truth and answers:
        heads.append(("result", True, ""))
    heads += [("HR", True, "num"), ("QRS", True, "num"), ("QTc", True, "num"), ("note", True, "")]

    body = []
    for i, r in enumerate(rows):
        page = quote(r["page"])
        classes = []
        if r.get("right") is False:
            classes.append("wrong")
        elif r.get("right") is True:
            classes.append("right")
        if r["status"] != "drawn":
            classes.append("unreadable")
        if r.get("fallback"):
            classes.append("fallback")
        cells = [_cell(i + 1, i + 1, "num"),
                 _cell(f'<img class="thumb" loading="lazy" src="{quote(r["thumb"])}" alt="page of '
                       f'{html.escape(r["name"])}">', raw=True),
                 _cell(f'<a href="{page}">{html.escape(r["name"])}</a>'
                       + (f' <a href="{quote(r["pdf"])}">PDF</a>' if r.get("pdf") else "")
                       + (f' <a href="{quote(r["paper"])}">beside the paper</a>' if r.get("paper") else ""),
                       r["name"], raw=True)]
        if answers:
            cells.append(_cell(r.get("answer", ""), cls="answered"))
            probs = r.get("probs") or {}
            thresholds = r.get("thresholds")
            if task.several:
                answered = task.answer_columns(r.get("answer_value") or [])
                for k, name in enumerate(task.prob_names):
                    text, sort = _num(probs.get(name))
                    cells.append(_cell(text, sort, "num answered" if k in answered else "num"))
            else:
                cells.append(_cell(*_num(probs.get(task.prob_names[0])), "num"))
                cells.append(_cell(*_num(thresholds[0] if thresholds else None), "num"))
        if truth:
            cells.append(_cell(r.get("truth", "not in the truth file")))
        if truth and answers:
            result = {True: "right", False: "wrong"}.get(r.get("right"), "")
            cells.append(_cell(result, {"right": 1, "wrong": 0}.get(result, ""), "result"))
        m = r.get("measurements") or {}
        for key in ("hr", "qrs_dur", "qtc"):
            cells.append(_cell(*_num(m.get(key), 0), "num"))
        note = r.get("error") or (f"fallback answer: {r['fallback']}" if r.get("fallback") else "")
        cells.append(_cell(("unreadable: " if r["status"] != "drawn" else "") + note if note else "", cls="note"))
        wrong = "1" if r.get("right") is False else "0"
        body.append(f'<tr class="{" ".join(classes)}" data-page="{page}" data-name="{html.escape(r["name"])}" '
                    f'data-wrong="{wrong}">' + "".join(cells) + "</tr>")

    th = "".join(f'<th class="{"sortable " if s else ""}{c}" scope="col"'
                 + (f' title="{html.escape(task.prob_names[SHORT.index(h)])}"' if h in SHORT else "") + f">{html.escape(h)}</th>"
                 for h, s, c in heads)
    n, wrong, bad = summary["n_records"], summary.get("n_wrong"), summary["n_unreadable"]
    facts = [f"{n} records", f"{bad} unreadable"]
    if wrong is not None:
        facts.insert(1, f"{wrong} wrong")
    control = ('<label><input type="checkbox" id="errors-only"> only wrong answers</label>' if truth and answers
               else "<span>(no answers and truth to compare: nothing is marked right or wrong)</span>") + "."
    title = summary.get("title") or "ECG printouts"
    legend = (f"Task {task.number} columns: " + ", ".join(f"{s} {c}" for s, c in zip(SHORT, task.prob_names))
              + "; bold: answered." if answers and task.several else "")
    summary_json = json.dumps(summary).replace("</", "<\\/")
    doc = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="summary">{", ".join(facts)}; showing <span id="shown">{n}</span>. {control}
Click a column's head to sort by it, a row to open its page. {html.escape(legend)}</p>
<table id="records">
<thead><tr>{th}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
<script type="application/json" id="summary">{summary_json}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
    write_text(path, doc)
    return path

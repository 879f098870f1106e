"""Regenerate the example reports in this folder from the bundled references and bug zoo.

    python reports/generate.py          # rewrites reports/*.html, *.json and README.md

tests/test_examples.py fails when these files are stale: the JSON must equal a fresh run
(timings aside) and each HTML file must equal the HTML rendered from its JSON."""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name -> (file, what it shows)
EXAMPLES = {
    "pass-karpathy-rnn": ("reference/python/rnn_karpathy.py",
                          "min-char-rnn as Karpathy wrote it (gradient clipping included): pass"),
    "fail-lstm-state-offset": ("reference/bugs/python/lstm_state_offset.py",
                               "LSTM whose backward reads h[t]/c[t] where h[t+1]/c[t+1] is "
                               "meant (seed 001's bug)"),
    "fail-rnn-missing-dh-next": ("reference/bugs/python/rnn_missing_dh_next_class.py",
                                 "vanilla RNN that drops the gradient from later steps: see "
                                 "the gradient flow"),
    "fail-softmax-double-exp": ("reference/bugs/python/softmax_double_exp.py",
                                "softmax exponentiated twice (seed 000's bug)"),
    "fail-c-lstm-cprev-wraparound": ("reference/bugs/c/cprev_wraparound.c",
                                     "an LSTM in C where c[t-1] wraps to the last state at t = 0"),
    "fail-layers-dc-next-missing-forget": ("reference/bugs/layers/lstm_dc_next_missing_forget.py",
                                           "rnn_layers.py-style code: dprev_c without the "
                                           "forget gate"),
    "fail-unmatched-repaired": ("reference/bugs/python/rnn_dbh_uses_dh_karpathy.py",
                                "a bug no catalogue entry names (dbh accumulates dh, not "
                                "dhraw): the line located, a rewrite of it verified"),
    "error-c-segfault": ("reference/bugs/c/segfault.c", "C code that crashes: the verdict names "
                                                         "the signal"),
}


def volatile(d: dict) -> dict:
    """The report without what differs from run to run (timings) or machine to machine
    (absolute paths)."""
    d = dict(d)
    d.pop("timings", None)
    d["checks"] = [{k: v for k, v in c.items() if k != "seconds"} for c in d.get("checks", [])]
    d["path"] = Path(d["path"]).name
    return d


def build(name: str) -> tuple[str, str]:
    from bpttcheck import report_html, report_json
    from bpttcheck.check.engine import Options, check
    from bpttcheck.result import Report

    src, _ = EXAMPLES[name]
    from bpttcheck import repair, scoring
    opts = Options(views=True)
    report = check(str(ROOT / src), opts)
    repair.attach(report, str(ROOT / src), opts)  # as `bpttcheck run` does: a verified repair
    report.path = src  # relative: the example reads the same on every machine
    scoring.attach(report)  # as `bpttcheck run` scores it: a point a check, the arch found
    text = report_json.render(report)
    return text, report_html.render(Report.model_validate(json.loads(text)))


def html_from_json(text: str) -> str:
    from bpttcheck import report_html
    from bpttcheck.result import Report
    return report_html.render(Report.model_validate(json.loads(text)))


def main() -> None:
    from bpttcheck.output import write_atomic
    rows = []
    for name, (src, what) in EXAMPLES.items():
        js, html = build(name)
        write_atomic(str(HERE / f"{name}.json"), js)
        write_atomic(str(HERE / f"{name}.html"), html)
        d = json.loads(js)
        top = d["diagnoses"][0]["id"] if d["diagnoses"] else (d["error"] or {}).get("kind", "")
        rows.append(f"| [{name}]({name}.html) | `{src}` | {d['verdict']} | {top or '-'} | {what} |")
        print(f"{name}: {d['verdict']} {top}", file=sys.stderr)
    write_atomic(str(HERE / "README.md"), "\n".join([
        "# Example reports",
        "",
        "What `bpttcheck run FILE --html report.html` writes, for files of this repository's",
        "references and bug zoo. Each HTML file is self-contained: download it and open it",
        "offline. The `.json` next to it is the `--json` report of the same run.",
        "Regenerate with `python reports/generate.py`; `tests/test_examples.py` fails when they",
        "are stale.",
        "",
        "| report | checked file | verdict | top diagnosis | what it shows |",
        "| --- | --- | --- | --- | --- |",
        *rows, ""]))


if __name__ == "__main__":
    main()

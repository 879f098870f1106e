"""JUnit XML (the Jenkins schema GitLab and GitHub reporters read): one testcase per check,
unique names; a run whose code could not be run is one testcase with an <error>; a warned
check passes, its warning in the testcase's <system-out>."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from bpttcheck.formatting import xml_safe
from bpttcheck.result import Diagnosis, Report


def _body(d: Diagnosis) -> str:
    """Evidence, the line and the fix, as far as the assignment shows them (feedback.py)."""
    return ((f"\n{d.evidence}" if d.evidence else "")
            + (f"\nwhere: {d.location.text()}" if d.location else "")
            + (f"\nfix:\n{d.fix}" if d.fix else ""))


def render(r: Report) -> str:
    name = os.path.basename(r.path)
    total = r.timings.get("total", 0.0)
    cases = []
    if r.error:
        case = ET.Element("testcase", classname=f"bpttcheck.{name}", name="run", time=f"{total:.3f}")
        err = ET.SubElement(case, "error", message=r.error.message[:500], type=r.error.kind)
        err.text = "\n".join(x for x in (r.error.message, r.error.line or "", r.error.output) if x)
        cases.append(case)
    diag = "\n\n".join(f"{d.id} (confidence {d.confidence:.2f}; {r.groups_shown(d) or '-'}): {d.title}{_body(d)}"
                       for d in r.diagnoses[:3])
    warn = "\n\n".join(f"{d.id}: {d.title}{_body(d)}" for d in r.warnings)
    for c in r.checks:
        case = ET.Element("testcase", classname=f"bpttcheck.{name}", name=c.name, time=f"{c.seconds:.3f}")
        if c.status == "fail":
            f = ET.SubElement(case, "failure", message=c.message[:500], type="bpttcheck")
            f.text = c.message + ("\n\n" + diag if diag else "")
        elif c.status in ("skip", "not-run"):  # not-run: the message starts "not run:"
            ET.SubElement(case, "skipped", message=c.message[:500])
        elif c.status == "warn":  # passes; CI tools show a testcase's output next to it
            out = ET.SubElement(case, "system-out")
            out.text = "WARNING " + (warn or c.message)
        cases.append(case)
    counts = {"tests": str(len(cases)),
              "failures": str(sum(c.find("failure") is not None for c in cases)),
              "errors": str(sum(c.find("error") is not None for c in cases))}
    suite = ET.Element("testsuite", {"name": f"bpttcheck {name}", **counts},
                       skipped=str(sum(c.find("skipped") is not None for c in cases)),
                       time=f"{total:.3f}",
                       timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    suite.extend(cases)
    props = ET.SubElement(suite, "system-out")
    props.text = ((f"assignment {r.title}; " if r.title else "") + f"verdict {r.verdict}; "
                  + "".join(f"warning {d.id}; " for d in r.warnings)
                  + f"arch {r.arch}; dtype {r.dtype}; "
                  + (f"seed {r.seed}; " if r.seed is not None else f"hidden case {r.case_tag}; ")
                  + f"sizes {r.sizes}; evaluations {r.evaluations}")
    root = ET.Element("testsuites", {"name": "bpttcheck", **counts}, time=f"{total:.3f}")
    root.append(suite)
    ET.indent(root)
    # a message may hold any character: shown as \xNN, the document stays valid XML
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + xml_safe(ET.tostring(root, encoding="unicode")) + "\n")

"""What a student is shown: an assignment's feedback controls (spec `[assignment] title` and
`[feedback]`) applied to a report once, before anything is rendered, so the terminal summary,
JSON, HTML, JUnit and Gradescope reports all leave out the same things. Scores and verdicts
are untouched: only what the student reads changes."""
from __future__ import annotations

from dataclasses import dataclass

from bpttcheck.result import Report

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")  # Gradescope's words


@dataclass(frozen=True)
class Feedback:
    title: str = ""  # the assignment's title, shown at the top of every report
    visibility: str = "visible"  # Gradescope: of results.json and of each test
    show_fix: bool = True  # False: no fix snippet (nor verified repair) of any diagnosis
    show_evidence: bool = True  # False: no evidence (nor located line); id and title stay

    @property
    def withheld(self) -> list[str]:
        return [f for f, shown in (("fix", self.show_fix), ("evidence", self.show_evidence))
                if not shown]


def for_student(r: Report, fb: Feedback) -> Report:
    """A copy of ``r`` as the assignment lets the student see it: its title set, the withheld
    fields of every diagnosis and warning emptied and named in ``withheld``."""
    out = r.model_copy(deep=True)
    out.title = fb.title
    out.withheld = fb.withheld
    for d in out.diagnoses + out.warnings:
        if not fb.show_fix:  # a verified repair is a fix, in the student's own code
            d.fix, d.repair = "", None
        if not fb.show_evidence:  # the located line and its values are evidence
            d.evidence, d.location = "", None
    return out

"""The HTML report (--html) and the class index of `bpttcheck grade`: content and escaping on
rendered pages, then the same pages in a real headless Chromium (not blank, key elements
visible, nothing fetched from the network)."""
import dataclasses
import html
import io
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bpttcheck import report_html
from bpttcheck.result import (
    CheckResult,
    Diagnosis,
    ErrorInfo,
    FDResult,
    Flow,
    GroupResult,
    Heatmap,
    Note,
    Report,
)
from conftest import REF, ZOO

EVIL = "<script>alert(1)</script>"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
PASS_FILE = REF / "lstm_functional.py"
FAIL_FILE = ZOO / "lstm_dc_next_missing_forget_xfirst.py"
FAIL_ID = "lstm.dc-next-missing-forget"
WARN_FILE = ZOO / "softmax_unstable.py"


# ---------------------------------------------------------------------------- reports

def engine_options():
    """Options that also fill heatmaps and the user's gradient flow where the engine can."""
    from bpttcheck.check.engine import Options

    names = {f.name for f in dataclasses.fields(Options)}
    return Options(views=True) if "views" in names else Options()


@pytest.fixture(scope="module")
def pass_report():
    from bpttcheck.check.engine import check

    return check(str(PASS_FILE), engine_options())


@pytest.fixture(scope="module")
def fail_report():
    from bpttcheck.check.engine import check

    return check(str(FAIL_FILE), engine_options())


@pytest.fixture(scope="module")
def warn_report():
    """Correct gradients, a softmax without max-subtraction: a pass with a warning."""
    from bpttcheck.check.engine import check

    return check(str(WARN_FILE), engine_options())


@pytest.fixture(scope="module")
def error_report(tmp_path_factory):
    from bpttcheck.check.engine import check

    d = tmp_path_factory.mktemp("evil")
    p = d / "crash.py"
    p.write_text(f"print({EVIL!r})\nraise ValueError({EVIL!r})\n")
    return check(str(p), engine_options())


def _matrix(rows, cols, f):
    return [[f(i, j) for j in range(cols)] for i in range(rows)]


def synthetic_report() -> Report:
    """Every field filled, hostile strings wherever the user's own text can appear, a matrix
    big enough to be pooled, NaN and inf, gaps in the gradient flow and a wide range of
    |dL/dh_t| (log scale)."""
    H, X, Y, T = 100, 120, 7, 40
    tol = 1e-13
    fd = FDResult(status="fail", analytic=0.25, numeric=0.125, error=0.125, tolerance=3e-8,
                  noise=1e-11, taylor_rates=[1.0, None], rate_verdict="wrong", step=1e-3)
    groups = [
        GroupResult(name="Wxh", user_name=f"W_{EVIL}", status="fail", max_abs_error=3e-2,
                    max_rel_error=1.5, worst_index=[3, 7], worst_user=0.5, worst_ref=-0.25,
                    tolerance=tol, scale=1.0, n_bad=100, n=H * X, fd=fd),
        GroupResult(name="Whh", user_name="Whh", status="pass", max_abs_error=1e-17,
                    max_rel_error=1e-15, worst_index=[0, 0], worst_user=1.0, worst_ref=1.0,
                    tolerance=tol, scale=1.0, n_bad=0, n=H * H, fd=None, clipped_at=5.0),
        GroupResult(name="by", user_name="by", status="fail", max_abs_error=math.inf,
                    max_rel_error=math.nan, worst_index=[2], worst_user=math.nan,
                    worst_ref=0.1, tolerance=tol, scale=1.0, n_bad=1, n=Y,
                    fd=fd.model_copy(update={"status": "pass"})),
    ]
    big = _matrix(H, X, lambda i, j: (1e-2 * math.sin(i * 0.3 + j * 0.1)) if i < 40 else
                  (tol * 0.5 if (i + j) % 2 else -tol * 0.3))
    big[77][100] = -4e-9  # a single outlier survives max-abs pooling
    heatmaps = [
        Heatmap(group="Wxh", user_name=f"W_{EVIL}", row_axis="hidden unit",
                col_axis=f"input token {EVIL}", row_labels=[f"h{i}" for i in range(H)],
                col_labels=[f"x{j}" for j in range(X)], diff=big,
                fd_minus_user=_matrix(H, X, lambda i, j: 1e-9 * ((i * j) % 5 - 2)),
                tolerance=tol, fd_step=1e-3),
        Heatmap(group="Whh", user_name="Whh", row_axis="hidden unit",
                col_axis="hidden unit (previous step)", row_labels=[f"h{i}" for i in range(6)],
                col_labels=[f"h{i}" for i in range(6)],
                diff=_matrix(6, 6, lambda i, j: 1e-17 * (i - j)), fd_minus_user=None,
                tolerance=tol),
        Heatmap(group="by", user_name="by", row_axis="", col_axis="output token",
                row_labels=[""], col_labels=[f"y{i}" for i in range(Y)],
                diff=[[0.0, 1e-2, -1e-2, math.nan, math.inf, 1e-14, -1e-11]],
                fd_minus_user=[[0.0, 1e-8, -1e-8, math.nan, 0.0, 0.0, 0.0]], tolerance=tol,
                fd_step=1e-3),
    ]
    ref_dh = [10 ** (-6 + 6 * t / (T - 1)) for t in range(T)]  # vanishing backwards
    user = [None if t % 9 == 4 else 1e-3 * (1 + 0.02 * t) for t in range(T)]
    ref = [None if t % 9 == 4 else 1e-3 * (1 + 0.01 * t) for t in range(T)]
    return Report(
        verdict="fail", arch="rnn", path=f"/home/student/{EVIL}/model.py", style="karpathy",
        groups=groups,
        checks=[CheckResult(name="forward.loss", status="pass", message="loss 1, reference 1"),
                CheckResult(name="grad.Wxh", status="fail", message=f"dWxh wrong {EVIL}",
                            seconds=0.25),
                CheckResult(name="fd.all", status="skip", message="skipped")],
        diagnoses=[Diagnosis(id="rnn.whh-not-transposed", confidence=0.99, groups=["Whh"],
                             title=f"Whh @ dh_raw {EVIL}", evidence=f"evidence {EVIL}",
                             fix=f"dh_next = Whh.T @ dh_raw  # {EVIL} & \"quotes\"",
                             exact=True),
                   Diagnosis(id="unmatched", confidence=0.3, groups=[], title="Nothing else",
                             evidence="ratio 0.5", fix="")],
        notes=[Note(id="grad.clipped", title="Clipped", evidence=f"at 5 {EVIL}")],
        evaluations=12, seed=7, sizes={"T": T, "X": X, "H": H, "Y": Y}, dtype="float32",
        reduction="mean", layout=f"concatenation [h; x] {EVIL}",
        tolerances={"loss_rtol": 1.2e-6, "grad_rtol": 3.4e-6, "fd_step": 1e-3},
        timings={"load": 0.1, "total": 1.5}, loss={"user": 4.25, "reference": 4.5},
        flow=Flow(reference=ref_dh, loss_steps=[1.0 + 0.1 * (t % 5) for t in range(T)],
                  user_preact=user, reference_preact=ref),
        heatmaps=heatmaps, version="9.9.9")


INDEX_ENTRIES = [
    {"student": "student10", "report": "student10/report.html", "verdict": "pass",
     "score": 10.0, "max_score": 10.0, "top_diagnosis": None, "top_title": None,
     "diagnoses": [], "error_kind": None, "seconds": 1.5},
    {"student": "student2", "report": "student2/report.html", "verdict": "fail",
     "score": 4.0, "max_score": 10.0, "top_diagnosis": "rnn.missing-dh-next",
     "top_title": "dh_next not added", "diagnoses": ["rnn.missing-dh-next",
                                                     "rnn.missing-dh-next", "loss.dy-sign"],
     "error_kind": None, "seconds": 2.25},
    {"student": f"Eve {EVIL}", "report": "javascript:alert(1)/report.html", "verdict": "fail",
     "score": 6.0, "max_score": 10.0, "top_diagnosis": "rnn.missing-dh-next",
     "top_title": f"title {EVIL}", "diagnoses": ["rnn.missing-dh-next"], "error_kind": None,
     "seconds": 0.75},
    {"student": "alice", "report": "alice/report.html", "verdict": "error", "score": 0.0,
     "max_score": 10.0, "top_diagnosis": None, "top_title": "timed out after 10 s",
     "diagnoses": [], "error_kind": "timeout", "seconds": 10.5},
    {"student": "Bob", "report": "Bob/report.html", "verdict": "fail", "score": None,
     "max_score": None, "top_diagnosis": "loss.dy-sign", "top_title": "y - p",
     "diagnoses": ["loss.dy-sign"], "error_kind": None, "seconds": 3.0},
]
INDEX_ORDER = ["alice", "Bob", f"Eve {EVIL}", "student2", "student10"]


# ---------------------------------------------------------------------------- HTML checks

class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def tags(page: str) -> list[tuple[str, dict]]:
    p = Tags()
    p.feed(page)
    return p.tags


def assert_self_contained(page: str, scripts: int = 0) -> None:
    ts = tags(page)
    names = [t for t, _ in ts]
    assert "link" not in names and "img" not in names and "iframe" not in names
    assert "object" not in names and "embed" not in names
    assert names.count("script") == scripts
    for tag, attrs in ts:
        assert "src" not in attrs, (tag, attrs)
        for k, v in attrs.items():
            v = v or ""
            if k == "xmlns":
                continue
            assert not re.match(r"\s*(https?:)?//", v), (tag, k, v)
            assert not v.strip().lower().startswith(("javascript:", "data:")), (tag, k, v)
    assert "@import" not in page and "url(" not in page
    # "http" only in the SVG namespace declaration
    assert re.sub(r'xmlns="http://www.w3.org/2000/svg"', "", page).count("http") == 0


def assert_escaped(page: str) -> None:
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def render(r: Report) -> str:
    page = report_html.render(r)
    assert page.lstrip().startswith("<!DOCTYPE html>")
    return page


# ---------------------------------------------------------------------------- unit: helpers

def test_numbers_are_measured_values():
    assert report_html.sci(1.234e-7) == "1.23e-07"
    assert report_html.sci(None) == "\u2014"
    assert report_html.sci(math.nan) == "nan" and report_html.sci(-math.inf) == "-inf"
    assert report_html.val(0.0260643164) == "0.0260643"


def test_max_abs_pooling_keeps_the_sign_and_nan():
    m = [[1.0, -5.0, 2.0], [0.5, 0.0, -3.0], [7.0, 0.0, 0.0]]
    assert report_html._pool(m, 2, 2) == [[-5.0, -3.0], [7.0, 0.0]]
    assert math.isnan(report_html._pool([[1.0, math.nan], [2.0, 3.0]], 2, 2)[0][0])


def test_colour_scale_is_symmetric_and_white_within_tolerance():
    s = report_html.Scale(1e12)
    tol = 1e-14
    assert s.colour(0.0, tol) == s.colour(0.9e-14, tol) == s.colour(-1e-14, tol) == \
        report_html.CENTRE
    assert s.colour(2e-14, tol) in s.pos and s.colour(-2e-14, tol) in s.neg
    assert s.pos.index(s.colour(1e-2, tol)) == s.neg.index(s.colour(-1e-2, tol)) == s.bins - 1
    assert s.colour(1e-10, tol) not in (s.colour(2e-14, tol), report_html.CENTRE)
    assert s.colour(math.nan, tol) == report_html.NONFINITE
    assert s.bins <= report_html.MAX_BINS
    assert report_html.Scale(0.5).bins == 1  # nothing beyond tolerance: still a legend


# ---------------------------------------------------------------------------- unit: synthetic

def test_synthetic_report_content_and_escaping():
    r = synthetic_report()
    page = render(r)
    assert_self_contained(page)
    assert_escaped(page)
    text = html.unescape(page)
    assert 'data-verdict="fail"' in page and ">FAIL<" in page
    assert "1 of 3 checks failed" in text
    for g in r.groups:
        assert re.search(rf'<tr class="{g.status}" data-group="{g.name}">', page), g.name
    assert "clipped at ±5" in text and "in fd.all" in re.sub("<[^>]+>", "", text)
    # diagnoses: id, confidence, fix in <pre><code>, user strings escaped (quotes too)
    assert 'data-id="rnn.whh-not-transposed"' in page and "confidence 0.99" in text
    fix = r.diagnoses[0].fix
    assert re.search(r'<pre class="fix"><code>dh_next = Whh\.T @ dh_raw  # &lt;script&gt;', page)
    assert fix in text and "&#34;quotes&#34;" in page
    assert "grad.clipped" in page and "Clipped" in page  # notes
    for c in r.checks:
        assert c.name in page
    # heatmaps: a panel per available matrix, pooled caption for the big one, NaN legend
    assert page.count('<svg class="heatmap"') == 5
    assert "100×120 pooled to 50×60 cells" in text and "2×2 block" in text
    assert "NaN/inf" in text and "NaN or inf" in text
    plain = re.sub("<[^>]+>", "", text)
    # a failing group's map is in units of 0.1% of its largest reference entry (scale 1.0
    # here), so its pattern shows; a passing group's in units of its tolerance
    beyond = sum(abs(x) > 1e-3 for row in r.heatmaps[0].diff for x in row)
    assert f"{beyond} of 12000 beyond ±1.00e-03 (‰ of the largest entry); max |value| 1.00e-02" in plain
    assert "beyond ±3.00e-08" in plain
    assert "yours − reference, in units of the group's tolerance (passing groups)" in text
    assert "in units of 0.1% of the group's largest reference entry" in text
    assert "no entry-wise finite differences (too many entries)" in text  # Whh has none
    # numbers as measured values
    assert "3.00e-02" in text and "1.50e+00" in text and "100 of 12000" in text
    # flow: log scale, gaps as separate path segments, largest difference named
    assert "|dL/dh" in text and "(log)" in text
    pre = page[page.index('id="flow-pre"'):page.index('id="flow-loss"')]
    assert pre.count('class="line user"') == 5  # None at t = 4, 13, 22, 31 splits into 5
    assert "no value at t = 4, 13, 22, 31" in text
    assert "largest relative difference" in text
    assert 'id="flow-loss"' in page and "total " in text
    # run details
    for s in ("seed", "grad_rtol = 3.40e-06", "12 calls of your code", "total 1.500 s", "9.9.9",
              "float32", "mean"):
        assert s in text, s


def test_without_optional_parts_the_page_still_renders():
    r = Report(verdict="pass", path="m.py")
    page = render(r)
    assert_self_contained(page)
    assert ">PASS<" in page and 'id="details"' in page
    assert 'class="heatmap"' not in page and 'id="flow"' not in page


def test_heatmap_of_a_passing_group_is_white():
    r = synthetic_report()
    page = render(r.model_copy(update={"heatmaps": [r.heatmaps[1]]}))
    start = page.index('<svg class="heatmap"')
    svg = page[start:page.index("</svg>", start)]
    fills = set(re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="\d+" height="\d+" '
                           r'fill="(#[0-9a-f]{6})" stroke="#fff"', svg))
    assert fills == {report_html.CENTRE}


def test_write_is_atomic_and_complete(tmp_path):
    p = tmp_path / "out" / "r.html"
    report_html.write(synthetic_report(), str(p))
    assert p.read_text().rstrip().endswith("</html>")
    assert [f.name for f in p.parent.iterdir()] == ["r.html"]


# ---------------------------------------------------------------------------- engine reports

@pytest.mark.slow
def test_passing_report(pass_report):
    assert pass_report.verdict == "pass"
    page = render(pass_report)
    assert_self_contained(page)
    text = html.unescape(page)
    assert ">PASS<" in page and f"All {len(pass_report.checks)} checks passed" in text
    assert 'id="diagnoses"' not in page
    for g in pass_report.groups:
        assert f'data-group="{g.name}"' in page
        assert report_html.sci(g.max_abs_error) in text
    assert 'id="flow-dh"' in page and 'id="flow-loss"' in page
    assert str(PASS_FILE) in text


@pytest.mark.slow
def test_warning_report(warn_report):
    assert warn_report.verdict == "pass" and warn_report.diagnoses == []
    page = render(warn_report)
    assert_self_contained(page)
    text = html.unescape(page)
    assert "checks passed, 1 with a warning" in text
    assert 'id="warnings"' in page and 'id="diagnoses"' not in page
    assert 'data-id="softmax.unstable"' in page and warn_report.warnings[0].fix in text
    assert '<tr class="warn" data-check="probe.large-logits"><td class="cname">probe.large-logits' in page


@pytest.mark.slow
def test_failing_lstm_report(fail_report):
    assert fail_report.verdict == "fail"
    page = render(fail_report)
    assert_self_contained(page)
    text = html.unescape(page)
    assert ">FAIL<" in page
    d = fail_report.diagnoses[0]
    assert d.id == FAIL_ID
    assert f'data-id="{FAIL_ID}"' in page and d.fix in text and d.title in text
    assert re.search(r'<pre class="fix"><code>dc_next = dc \* f', page)
    for g in fail_report.groups:
        assert re.search(rf'<tr class="{g.status}" data-group="{g.name}">', page), g.name
        assert report_html.sci(g.max_rel_error) in text
        if g.fd:
            assert report_html.sci(g.fd.analytic, 3) in text
    assert page.count('<tr class="fail" data-group=') == sum(
        g.status == "fail" for g in fail_report.groups)
    if fail_report.heatmaps:  # the engine fills them with Options(views=True)
        assert page.count('class="hm"') == len(fail_report.heatmaps)


@pytest.mark.slow
def test_error_report_escapes_the_users_text(error_report):
    r = error_report
    assert r.verdict == "error" and r.error is not None
    page = render(r)
    assert_self_contained(page)
    assert_escaped(page)
    text = html.unescape(page)
    assert ">ERROR<" in page and r.error.kind in text and r.error.message in text
    assert re.search(r'<pre class="output"><code>', page)
    if r.error.line:
        assert r.error.line in text
    assert 'id="groups"' not in page


# ---------------------------------------------------------------------------- class index

def index_rows(page: str) -> list[str]:
    return [html.unescape(s) for s in re.findall(r'<td class="student" data-sort="([^"]*)"',
                                                 page)]


def test_index_is_sorted_by_student_without_javascript():
    page = report_html.render_index(list(reversed(INDEX_ENTRIES)), f"class {EVIL}")
    assert index_rows(page) == INDEX_ORDER
    assert_self_contained(page, scripts=1)
    assert_escaped(page)
    assert all("src" not in a for t, a in tags(page) if t == "script")


def test_index_summary_chart_and_links():
    page = report_html.render_index(INDEX_ENTRIES, "CS 101")
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    counts = dict(re.findall(r'<div class="stat (pass|fail|error)"><div class="n">(\d+)<', page))
    assert counts == {"pass": "1", "fail": "3", "error": "1"}
    assert "5.00 of 10" in text  # mean of the 4 scored entries: (10 + 4 + 6 + 0) / 4
    # diagnosis ids, each counted once per student, most frequent first
    chart = page[page.index('<svg class="hbarchart"'):]
    bars = re.findall(r'class="id">([^<]+)</text>\s*<rect class="hbar"[^>]*/>\s*'
                      r'<text[^>]*>(\d+) of 5', chart)
    assert bars == [("loss.dy-sign", "2"), ("rnn.missing-dh-next", "2"), ("error: timeout", "1")]
    # links: relative, encoded so that no scheme can sneak in
    hrefs = [a["href"] for t, a in tags(page) if t == "a"]
    assert "student2/report.html" in hrefs
    assert "javascript%3Aalert%281%29/report.html" in hrefs
    assert "error: timeout" in text and "4 / 10" in text and "—" in text
    mixed = [dict(e, max_score=20.0) if e["student"] == "alice" else e for e in INDEX_ENTRIES]
    assert ">50.0%<" in report_html.render_index(mixed, "t")  # (1 + .4 + .6 + 0) / 4


# ---------------------------------------------------------------------------- in Chromium

def decode_png(data: bytes) -> np.ndarray:
    """A PNG screenshot (Chromium writes RGB or RGBA) as an (h, w, 4) RGBA array."""
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG", img.format
        return np.asarray(img.convert("RGBA"))


def assert_not_blank(png: bytes) -> np.ndarray:
    img = decode_png(png)[:, :, :3].astype(np.float64)
    lum = img.mean(axis=2)
    non_white = float((lum < 235).mean())
    assert lum.std() > 10, lum.std()
    assert non_white > 0.02, non_white
    assert len(np.unique(img.reshape(-1, 3)[::97], axis=0)) > 8  # more than a few colours
    return img


def test_png_decoder_reads_what_a_png_writer_wrote():
    img = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="PNG")
    rgba = decode_png(buf.getvalue())
    assert np.array_equal(rgba[:, :, :3], img) and (rgba[:, :, 3] == 255).all()


_chromium_missing = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing (Debian's chromium; .ci/run installs it)")


def needs_chromium(test):
    """A test that drives headless Chromium: marked `browser`, skipped without Chromium."""
    return pytest.mark.browser(_chromium_missing(test))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, path: Path, width: int = 1280, dialogs: list | None = None):
    """The page at file://path and the list of every URL it requested that is not a file or
    data URL (each such request is aborted, so nothing ever leaves the machine)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    outside: list[str] = []

    def on_request(req):
        if not req.url.startswith(("file:", "data:")):
            outside.append(req.url)

    page.on("request", on_request)
    if dialogs is not None:
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(100)
    return page, outside


def assert_visible(page, selector: str, n: int = 1) -> None:
    els = page.query_selector_all(selector)
    assert len(els) >= n, selector
    for el in els[:n]:
        box = el.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, (selector, box)
        assert el.is_visible(), selector
        assert el.evaluate("e => getComputedStyle(e).display") != "none"


BROWSER_PAGES = {
    "pass": ["#verdict", "table.groups", "#groups tr[data-group]", "#flow-dh svg",
             "#flow-loss svg", "#details"],
    "fail": ["#verdict", "table.groups", "#groups tr[data-group]", ".dcard pre.fix",
             "#flow-dh svg", "#flow-loss svg"],
    "warn": ["#verdict", "#warnings .dcard.warn", "#warnings .dcard.warn pre.fix",
             "#checks tr.warn .badge.warn"],
    "error": ["#verdict", "#error pre.output", "#details"],
    "synthetic": ["#verdict", "table.groups", ".dcard pre.fix", "svg.heatmap",
                  "#flow-dh svg.linechart", "#flow-pre svg.linechart", "#flow-loss svg.barchart"],
}


@needs_chromium
@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n == "synthetic" else pytest.mark.slow)
                                  for n in BROWSER_PAGES])  # the others check user code first
def test_report_in_chromium(name, browser, tmp_path, request):
    r = synthetic_report() if name == "synthetic" else request.getfixturevalue(f"{name}_report")
    path = tmp_path / f"{name}.html"
    path.write_text(report_html.render(r), encoding="utf-8")
    page, outside = open_page(browser, path)
    try:
        assert outside == []
        selectors = list(BROWSER_PAGES[name])
        if name == "fail" and r.heatmaps:
            selectors.append("svg.heatmap")
        for sel in selectors:
            assert_visible(page, sel)
        banner = page.query_selector("#verdict .verdict")
        assert banner.inner_text().strip() == r.verdict.upper()
        if name == "warn":  # the warning is shown, and tinted apart from a failure
            card = page.query_selector("#warnings .dcard.warn")
            assert "softmax.unstable" in card.inner_text()
            tint = card.evaluate("e => getComputedStyle(e).backgroundColor")
            rgb = [int(x) for x in re.findall(r"\d+", tint)[:3]]
            assert rgb[0] > rgb[2] + 20 and rgb[1] > rgb[2] + 20, tint  # amber, not red
        assert page.evaluate("document.querySelectorAll('script').length") == 0
        assert page.title() == f"bpttcheck {r.verdict.upper()}: {os.path.basename(r.path)}"
        img = assert_not_blank(page.screenshot(full_page=True))
        # the banner is tinted with its verdict's colour
        shot = decode_png(page.query_selector("#verdict").screenshot())[:, :, :3]
        mean = shot.reshape(-1, 3).mean(axis=0)
        red, green, blue = mean
        if r.verdict == "pass":
            assert green > red and green > blue
        else:
            assert red > green and red > blue
        # nothing is wider than a phone's screen except inside a scroll box
        page.set_viewport_size({"width": 390, "height": 800})
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 392, overflow
        assert img.shape[1] == 1280
    finally:
        page.close()


@needs_chromium
def test_heatmap_in_chromium_shows_colour_where_values_differ(browser, tmp_path):
    path = tmp_path / "s.html"
    path.write_text(report_html.render(synthetic_report()), encoding="utf-8")
    page, outside = open_page(browser, path)
    try:
        assert outside == []
        svg = page.query_selector(".hm[data-group='by'] svg.heatmap")
        img = decode_png(svg.screenshot())[:, :, :3].astype(int)
        r, b = img[:, :, 0], img[:, :, 2]
        reds, blues = (r > b + 60).sum(), (b > r + 60).sum()
        assert reds > 50 and blues > 50
    finally:
        page.close()


@needs_chromium
def test_index_in_chromium_sorts_on_click(browser, tmp_path):
    path = tmp_path / "index.html"
    path.write_text(report_html.render_index(INDEX_ENTRIES, f"class {EVIL}"), encoding="utf-8")
    dialogs: list[str] = []
    page, outside = open_page(browser, path, dialogs=dialogs)
    try:
        assert outside == []
        for sel in ("#summary", "svg.hbarchart", "#students-table"):
            assert_visible(page, sel)

        def students():
            return page.eval_on_selector_all("#students-table tbody td.student",
                                             "tds => tds.map(t => t.textContent.trim())")
        assert students() == INDEX_ORDER
        page.click("th[data-key=score]")
        assert students()[-1] == "student10"  # 10 of 10, highest score last
        assert students()[0] == "Bob"  # no score sorts first
        page.click("th[data-key=score]")
        assert students()[0] == "student10"
        page.click("th[data-key=seconds]")
        assert students() == ["Eve " + EVIL, "student10", "student2", "Bob", "alice"]
        page.click("th[data-key=student]")
        assert students() == INDEX_ORDER
        page.click("th[data-key=student]")
        assert students() == INDEX_ORDER[::-1]
        assert dialogs == []  # the student's name never ran as a script
        assert_not_blank(page.screenshot(full_page=True))
    finally:
        page.close()


def scored_index_entries() -> list[dict]:
    """INDEX_ENTRIES with each student's scored checks (what `grade` passes)."""
    checks = {"student10": {"grad.Whh": "pass", "fd.all": "pass"},
              "student2": {"grad.Whh": "fail", "fd.all": "pass"},
              "alice": {"grad.Whh": "not-run", "fd.all": "not-run"}}
    return [dict(e, checks=checks.get(e["student"], {"grad.Whh": "fail", "fd.all": "fail"}))
            for e in INDEX_ENTRIES]


@needs_chromium
def test_score_and_points_in_chromium(browser, tmp_path):
    """The score in the banner, each check's points in the checks table, the scored checks
    that did not run marked so, on a failing report and on one whose code stopped early."""
    from bpttcheck import scoring

    fail = scoring.attach(synthetic_report(), {"grad.*": 2})
    stopped = scoring.attach(Report(
        verdict="error", path="x.py", arch="rnn", layout="hx",
        checks=[CheckResult(name="forward.loss", status="pass", message="ok")],
        error=ErrorInfo(kind="timeout", message="one call took longer than 10 s")))
    for name, r in (("fail", fail), ("stopped", stopped)):
        path = tmp_path / f"{name}.html"
        path.write_text(report_html.render(r), encoding="utf-8")
        page, outside = open_page(browser, path)
        try:
            assert outside == []
            for sel in ("#verdict .score", "#checks td.points"):
                assert_visible(page, sel)
            banner = page.inner_text("#verdict .score")
            assert banner.startswith(f"Score {r.score.earned:g} of {r.score.possible:g} points")
            points = page.eval_on_selector_all(
                "#checks tr[data-check]", "rs => rs.map(r => [r.dataset.check, "
                "r.querySelector('td.points').textContent])")
            worth = {c.name: f"{c.earned:g} / {c.possible:g}" for c in r.score.checks}
            assert {k: v for k, v in points if k in worth} == worth
            if name == "stopped":
                assert_visible(page, "#checks tr.notrun .badge.notrun",
                               len(scoring.scored_checks("rnn")) - 1)
                assert "did not run" in banner
        finally:
            page.close()


@needs_chromium
def test_index_per_check_breakdown_in_chromium(browser, tmp_path):
    path = tmp_path / "index.html"
    path.write_text(report_html.render_index(scored_index_entries(), "Homework 3", "bpttcheck: hw3"),
                    encoding="utf-8")
    page, outside = open_page(browser, path)
    try:
        assert outside == []
        for sel in ("#checks table.per-check", "#checks tr[data-check='grad.Whh'] .bar.fail",
                    "#checks tr[data-check='fd.all'] .bar.notrun"):
            assert_visible(page, sel)
        cells = page.eval_on_selector_all(
            "#checks tr[data-check='grad.Whh'] td.num", "tds => tds.map(t => t.textContent)")
        assert cells == ["3", "1", "1"]  # failed, not run, passed of 5
        assert page.inner_text("h1") == "Homework 3"
        assert "4 / 10" in page.inner_text("#students-table")
        assert_not_blank(page.screenshot(full_page=True))
    finally:
        page.close()


@needs_chromium
def test_network_listener_sees_outside_requests(browser, tmp_path):
    """The check above is not vacuous: a page that does load from outside is caught (and the
    request aborted)."""
    path = tmp_path / "leaky.html"
    path.write_text('<!DOCTYPE html><img src="http://bpttcheck.invalid/x.png">')
    page, outside = open_page(browser, path)
    try:
        assert outside == ["http://bpttcheck.invalid/x.png"]
    finally:
        page.close()


@needs_chromium
def test_the_located_line_is_highlighted_and_visible(browser, tmp_path):
    """Issue 15: the diagnosis card shows the user's code around the located line, that line
    marked (a red bar and tint) with the reference's value beside it, on screen."""
    from bpttcheck.check.engine import Options, check
    from conftest import ZOO
    r = check(str(ZOO / "rnn_tanh_derivative_missing_column.py"), Options(seed=0))
    loc = r.diagnoses[0].location
    assert loc is not None and loc.line
    path = tmp_path / "located.html"
    path.write_text(report_html.render(r), encoding="utf-8")
    page, outside = open_page(browser, path)
    try:
        assert outside == []
        hit = page.query_selector("#diagnoses pre.where-code .hit")
        assert hit is not None and hit.is_visible()
        text = hit.inner_text()
        assert str(loc.line) in text and "da = dh" in text and "reference:" in text
        img = decode_png(hit.screenshot())[:, :, :3].astype(int)
        red = ((img[:, :, 0] > img[:, :, 2] + 40) & (img[:, :, 0] > 150)).sum()
        assert red > 50  # the marked line's tint and bar
        ctx = page.query_selector_all("#diagnoses pre.where-code .ctx")
        assert len(ctx) >= 3  # the lines around it, unmarked
    finally:
        page.close()

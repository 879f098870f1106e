"""osbox.start_probe begins the bwrap probe's first try in the background (the early worker of
`bpttcheck run` stages the submission meanwhile): current() must give the answer the probe
gives when it runs at once, whether bwrap works, is missing, or cannot make namespaces."""
from __future__ import annotations

import os
import stat

import pytest

from bpttcheck.sandbox import osbox


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch):
    monkeypatch.delenv(osbox.SWITCH_VAR, raising=False)
    osbox.reset()
    yield
    osbox.reset()


def _both() -> tuple[osbox.Sandbox, osbox.Sandbox]:
    osbox.reset()
    at_once = osbox.current()
    osbox.reset()
    osbox.start_probe()
    early = osbox.current()
    assert not osbox._pending  # taken by current(), and waited for
    return at_once, early


def test_the_early_probe_answers_as_the_probe_does_here():
    at_once, early = _both()
    assert early == at_once


def test_a_bwrap_that_fails_is_tried_tier_by_tier_as_before(tmp_path, monkeypatch):
    fake = tmp_path / "bwrap"  # fails every tier, saying why, as a bwrap without userns does
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\n"
                    "exit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    at_once, early = _both()
    assert early == at_once and not early.strong
    assert "user namespaces are off" in (early.why_weak or "")


def test_without_bwrap_or_with_the_sandbox_off_nothing_is_started(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    osbox.start_probe()
    assert not osbox._pending
    assert osbox.current().why_weak == "bwrap not found"
    osbox.reset()
    monkeypatch.setenv(osbox.SWITCH_VAR, "weak")
    osbox.start_probe()
    assert not osbox._pending and not osbox.current().strong


def test_a_probe_begun_with_one_bwrap_is_not_taken_for_another(tmp_path, monkeypatch):
    osbox.start_probe()  # the machine's bwrap, if any
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: Creating new namespace failed' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    sb = osbox.current()  # PATH now finds the fake: its answer, not the early one's
    assert not sb.strong and "namespace" in (sb.why_weak or "")

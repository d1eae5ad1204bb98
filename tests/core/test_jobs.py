"""Background jobs: progress while they run, their result or their error after, and no job waits on another
while a worker is free."""

from __future__ import annotations

import threading

import pytest

from core.jobs import Jobs


def test_a_job_reports_progress_then_its_result_and_a_slow_job_does_not_hold_up_another():
    jobs = Jobs(workers=2)
    release = threading.Event()

    def slow(report):
        report(0.5, "Embedding 3 chunks of big.md")
        release.wait(10)
        return "big done"

    big = jobs.submit("big", slow)
    small = jobs.submit("small", lambda report: "small done")
    assert small.wait(5) and small.outcome() == "small done"
    assert not big.done and (big.fraction, big.message) == (0.5, "Embedding 3 chunks of big.md")
    release.set()
    assert big.wait(5) and big.outcome() == "big done"
    jobs.shutdown()


def test_a_failed_job_hands_its_error_to_whoever_waits():
    jobs = Jobs(workers=1)

    def broken(report):
        raise ValueError("the file is damaged")

    job = jobs.submit("broken", broken)
    assert job.wait(5)
    with pytest.raises(ValueError, match="the file is damaged"):
        job.outcome()
    jobs.shutdown()

"""Study-complete detection: quiet for ``quiet_seconds``, reported once per round, late instances, retries."""

from __future__ import annotations

from tasks.sources.studies import StudyTracker


class Clock:
    """A clock the test moves forward (the tracker takes any monotonic clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_study_is_reported_once_after_it_went_quiet() -> None:
    clock = Clock()
    tracker = StudyTracker(quiet_seconds=60, clock=clock)
    for _ in range(3):
        tracker.record("a" * 32, "CT", 100)
        clock.now += 30  # instances 30 s apart: never quiet for 60 s
        assert tracker.due() == []
    tracker.record("b" * 32, "US", 5)
    clock.now += 31
    (study,) = tracker.due()
    assert (study.token, study.instances, study.bytes, study.modalities) == ("a" * 32, 3, 300, {"CT": 3})
    assert study.payload("push") == {
        "listener": "push",
        "study": "a" * 32,
        "instances": 3,
        "bytes": 300,
        "modalities": {"CT": 3},
        "last_received": study.last_received,
    }
    assert tracker.due() == [] and tracker.next_due_in() == 29
    clock.now += 29
    assert [s.token for s in tracker.due()] == ["b" * 32]
    assert tracker.next_due_in() is None


def test_late_instances_start_a_new_round_and_failed_reports_come_back() -> None:
    clock = Clock()
    tracker = StudyTracker(quiet_seconds=10, clock=clock)
    tracker.record("a" * 32, "CT", 1)
    clock.now += 10
    assert [s.instances for s in tracker.due()] == [1]
    tracker.record("a" * 32, "CT", 1)  # a late slice
    tracker.record("a" * 32, "SR", 1)
    clock.now += 10
    (late,) = tracker.due()
    assert (late.instances, late.modalities) == (2, {"CT": 1, "SR": 1})
    tracker.restore(late)  # reporting failed
    assert tracker.due() == []
    clock.now += 10
    (again,) = tracker.due()
    assert (again.instances, again.bytes, again.modalities) == (2, 2, {"CT": 1, "SR": 1})


def test_recovered_studies_are_aged_by_their_newest_file() -> None:
    clock = Clock()
    tracker = StudyTracker(quiet_seconds=60, clock=clock)
    tracker.record("a" * 32, "MR", 10, age_s=3600, count=4)  # staged an hour ago, before a crash
    assert [s.instances for s in tracker.due()] == [4]

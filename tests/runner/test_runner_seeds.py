"""Seed accounting: next_seed never passes an unfinished range; the journal restores progress and allocations."""

from __future__ import annotations

from runner.seeds import SeedLedger, replay_journal


def test_runner_ledger_next_seed_waits_for_every_lower_seed(tmp_path):
    ledger = SeedLedger(0, [], tmp_path / "j")
    a = ledger.allocate(100, 0)
    b = ledger.allocate(100, 0)
    assert (a, b) == ((0, 0, 100), (100, 100, 200))
    ledger.progress(100, 200)  # the second range finished first
    ledger.release(100)
    assert ledger.next_seed == 0 and ledger.ranges_in_flight() == [[0, 100, 0]]
    ledger.progress(0, 40)
    assert ledger.next_seed == 40
    ledger.progress(0, 100)
    ledger.release(0)
    assert ledger.next_seed == 200 and ledger.ranges_in_flight() == []


def test_runner_journal_restores_allocations_and_progress_and_ignores_a_torn_line(tmp_path):
    journal = tmp_path / "j"
    ledger = SeedLedger(0, [], journal)
    ledger.allocate(100, 0)
    ledger.allocate(100, 0)
    ledger.progress(100, 150)
    ledger.write_journal(50)
    with open(journal, "ab") as fh:
        fh.write(b'{"a":300,"i":')  # a torn write (power loss)
    allocated, ranges, iterations, applied, bad = replay_journal(journal, 0, [], 0)
    assert (allocated, ranges, iterations, applied, bad) == (200, [[0, 100, 0], [100, 200, 150]], 50, 3, 1)
    restored = SeedLedger(allocated, ranges, journal)
    assert restored.next_seed == 0
    assert restored.take_resumable() == (0, 0, 100) and restored.take_resumable() == (100, 150, 200)
    assert restored.take_resumable() is None


def test_runner_ledger_end_seed_caps_allocation(tmp_path):
    ledger = SeedLedger(0, [], tmp_path / "j", end_seed=150)
    assert ledger.allocate(100, 0) == (0, 0, 100)
    assert ledger.allocate(100, 0) == (100, 100, 150)
    assert ledger.allocate(100, 0) is None and ledger.exhausted()

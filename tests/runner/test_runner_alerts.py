"""The alert limiter (one an hour; urgent ones at once but at most 5 an hour; held ones summarised; state
round-trips for restarts) and the email's subject and body; plus a flood batch through the real runner."""

from __future__ import annotations

import json

from runner import alerts
from runner.alerts import Alert, Limiter

from runner_helpers import run_runner

T0 = 1_800_000_000.0


def _record(seed: int, signature: str = "replica_consistency: Replica divergence at time <N>", sid: str = "3f0c9a1d2b7e"):
    return {"seed": seed, "kind": "invariant", "signature": signature, "signature_id": sid,
            "message": f"Replica divergence at time {seed * 7}", "stderr_tail": "",
            "simulator": {"commit": "4c241cb015e5c5e26c592441a7478ca8b3d07323"},
            "reproduce": {"commands": ["git clone https://example.com/k.git vopr-repro", "cd vopr-repro",
                                       "git checkout 4c241cb0", "cargo build --release", f"vopr --json --seed {seed} -n 1 -v"]}}


def test_runner_limiter_one_an_hour_urgent_at_once_capped_and_summarised():
    lim = Limiter()
    plain = Alert("failure", records=[_record(1)])
    assert lim.allows(plain, T0)
    lim.sent(plain, T0)
    later = Alert("failure", records=[_record(2), _record(3)])
    assert not lim.allows(later, T0 + 60)
    lim.hold(later, T0 + 60)
    assert not lim.digest_due(T0 + 3599) and lim.digest_due(T0 + 3600)
    for i in range(alerts.IMMEDIATE_PER_HOUR):
        urgent = Alert("new_signature", records=[_record(10 + i)], new_signatures=[{"signature_id": "x", "signature": "s", "seed": 10 + i}])
        assert lim.allows(urgent, T0 + 100 + i)
        held = lim.sent(urgent, T0 + 100 + i)
        if i == 0:
            assert held["alerts"] == 1 and held["seeds"] == [2, 3] and held["failures"] == 2
    sixth = Alert("new_signature", records=[_record(99)], new_signatures=[{"signature_id": "y", "signature": "t", "seed": 99}])
    assert not lim.allows(sixth, T0 + 200)  # the at-once path is capped too
    lim.hold(sixth, T0 + 200)
    restored = Limiter(json.loads(json.dumps(lim.to_json())))  # what a restart sees
    assert not restored.allows(Alert("failure", records=[_record(5)]), T0 + 300)
    assert restored.held["new_signatures"] == 1 and restored.held["seeds"] == [99]
    assert restored.allows(sixth, T0 + 100 + 3600) and restored.digest_due(T0 + 104 + 3600)


def test_runner_alert_subject_is_one_ascii_line_of_at_most_100_chars():
    long_sig = "linearizability: Final history is not linearizable — écrit " + "x" * 200 + "\nsecond line"
    alert = Alert("new_signature", records=[_record(7, long_sig)],
                  new_signatures=[{"signature_id": "abc", "signature": long_sig, "seed": 7}])
    subject = alerts.subject(alert, "vopr", {})
    assert len(subject) <= 100 and subject.isascii() and "\n" not in subject and subject.endswith("...")
    assert subject.startswith("[vopr] New failure, seed 7: linearizability")
    flood = Alert("flood", records=[_record(s) for s in range(21)], batch={"first_seed": 0, "last_seed": 999, "failures": 21})
    assert alerts.subject(flood, "vopr", {}) == "[vopr] 21 failures in batch 0-999"


def test_runner_alert_body_has_what_an_operator_needs():
    held = {"since": T0 - 600, "alerts": 2, "failures": 3, "seeds": [11, 12, 13], "errors": ["the simulator does not start"],
            "signatures": {"3f0c9a1d2b7e": {"signature": "replica_consistency: Replica divergence at time <N>", "count": 3}},
            "new_signatures": 0}
    alert = Alert("new_signature", records=[_record(40), _record(41, "commit_history: x", "aaaaaaaaaaaa")],
                  new_signatures=[{"signature_id": "aaaaaaaaaaaa", "signature": "commit_history: x", "seed": 41}],
                  batch={"first_seed": 0, "last_seed": 999, "failures": 2})
    ctx = {"deployment": "vopr", "host": {"hostname": "ip-10-0-0-12", "instance_id": "i-0123"}, "now": T0,
           "totals": {"iterations": 120417, "failures": 12, "signatures": 3, "nondeterministic": 0}, "next_seed": 120000,
           "store_url": "s3://bucket/"}
    body = alerts.body(alert, held, ctx)
    for needle in ("Batch: seeds 0-999, 2 failures", "New signatures (1):", "aaaaaaaaaaaa  commit_history: x  (first seed 41)",
                   "Latest failed seeds (2 of 2", "40  invariant", "Replica divergence at time 280",
                   "Held back by the rate limit since 2027-01-15T07:50:00Z: 2 alerts, 3 failures", "latest seeds: 11, 12, 13",
                   "3 x 3f0c9a1d2b7e", "problem: the simulator does not start",
                   "Totals: 120,417 seeds run, 12 failures (1 in 10,034 seeds), 3 signatures, 0 nondeterministic",
                   "instance i-0123", "Time: 2027-01-15T08:00:00Z", "Reproduce seed 41 (commit 4c241cb015e5):",
                   "  git checkout 4c241cb0", "s3://bucket/failures/41.json", "s3://bucket/checkpoints/latest.json"):
        assert needle in body, needle


def test_runner_flood_batch_alerts_at_once_even_for_a_known_signature(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(fail={"1": {}})
    first = run_runner(fake_sim, store, "--batch-size", "5", "--max-batches", "1")
    assert [a["reason"] for a in first.events("alert")] == ["new_signature"]
    fake_sim.set(fail={str(s): {} for s in range(5, 35)})  # 30 failures, same signature, one batch
    second = run_runner(fake_sim, store, "--batch-size", "40", "--max-batches", "1", "--replay-backlog", "0")
    sent = second.events("alert")
    assert [a["reason"] for a in sent] == ["flood"], [a["subject"] for a in sent]
    assert "failures in batch 5-44" in sent[0]["subject"] and "more than 20 failures in one batch" in sent[0]["body"]

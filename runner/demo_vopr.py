"""A DEMO simulation target, not a real database: three replicas replicate a log over a lossy network, with
two rare bugs planted on purpose so the runner has something to find. Speaks the `vopr-json` protocol.

Deterministic per seed (everything comes from `random.Random(seed)`). Run:
`python -m runner.demo_vopr --json --seed 0 -n 1000`. Planted bugs: a follower appends a duplicated, reordered
prepare instead of ignoring it (replica_consistency); a follower serves a read from an uncommitted entry
(linearizability); a commit for an entry a storage fault lost panics (exit 101, like a Rust panic).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time

import random

REPLICAS = 3
DUPLICATE_PROBABILITY = 0.0001
STALE_READ_PROBABILITY = 0.0003
STORAGE_FAULT_PROBABILITY = 0.000001


class Panic(Exception):
    """A simulated crash of the system under test (the demo's stand-in for a Rust panic)."""


class Violation(Exception):
    def __init__(self, invariant: str, message: str, events: int):
        super().__init__(message)
        self.invariant = invariant
        self.message = message
        self.events = events


class Replica:
    def __init__(self, index: int):
        self.index = index
        self.log: list[int] = []
        self.commit = 0
        self.lost_entry = False


def simulate(seed: int, max_events: int, network_faults: bool, storage_faults: bool) -> tuple[int, float]:
    """Run one seed; returns (events, simulated_time_ms) or raises Violation / Panic."""
    rng = random.Random(seed)
    replicas = [Replica(i) for i in range(REPLICAS)]
    leader = replicas[0]
    queue: list[tuple[int, int, int, str, int, int]] = []
    now_ns = 0
    sequence = 0
    events = 0
    acks: dict[int, set[int]] = {}
    stale_reads = 0

    def send(dst: int, kind: str, slot: int, value: int) -> None:
        nonlocal sequence
        if network_faults and rng.random() < 0.08:
            return  # lost
        copies = 2 if network_faults and rng.random() < DUPLICATE_PROBABILITY else 1
        for _ in range(copies):
            sequence += 1
            heapq.heappush(queue, (now_ns + rng.randint(1_000_000, 9_000_000), sequence, dst, kind, slot, value))

    for op in range(rng.randint(6, 14)):
        now_ns += rng.randint(500_000, 4_000_000)
        value = rng.getrandbits(32)
        leader.log.append(value)
        slot = len(leader.log) - 1
        acks[slot] = {0}
        for follower in (1, 2):
            send(follower, "prepare", slot, value)
        if rng.random() < 0.3:
            sequence += 1
            heapq.heappush(queue, (now_ns + rng.randint(0, 5_000_000), sequence, rng.choice((1, 2)), "read", slot, 0))

    while queue and events < max_events:
        now_ns, _, dst, kind, slot, value = heapq.heappop(queue)
        events += 1
        replica = replicas[dst]
        if kind == "prepare":
            if slot == len(replica.log):
                replica.log.append(value)
            elif slot < len(replica.log) - 1 and replica.log[slot] == value and slot == len(replica.log) - 2:
                replica.log.append(value)  # PLANTED BUG: a duplicated, reordered prepare is appended again
            if slot < len(replica.log):
                send(0, "ack", slot, dst)
        elif kind == "ack":
            acks[slot].add(value)
            if len(acks[slot]) * 2 > REPLICAS and leader.commit <= slot:
                leader.commit = slot + 1
                for follower in (1, 2):
                    send(follower, "commit", leader.commit, 0)
        elif kind == "commit":
            if storage_faults and not replica.lost_entry and rng.random() < STORAGE_FAULT_PROBABILITY:
                replica.lost_entry = True
                replica.log = replica.log[:-1]
            if replica.lost_entry and slot > len(replica.log):
                raise Panic(f"index out of bounds: the len is {len(replica.log)} but the index is {slot - 1}")
            replica.commit = max(replica.commit, min(slot, len(replica.log)))
            for i in range(replica.commit):
                if i < len(leader.log) and replica.log[i] != leader.log[i]:
                    raise Violation("replica_consistency", f"Replica divergence at time {now_ns}", events)
        elif kind == "read":
            if slot < len(replica.log) and slot >= replica.commit and rng.random() < STALE_READ_PROBABILITY:
                stale_reads += 1  # PLANTED BUG: serves an entry the replica does not know is committed
    if stale_reads:
        raise Violation("linearizability", "Final history is not linearizable", events)
    return events, round(now_ns / 1e6, 3)


def timestamp() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}+00:00"


def emit(kind: str, data: dict) -> None:
    line = json.dumps({"data": data, "timestamp": timestamp(), "type": kind}, sort_keys=True, separators=(",", ":"))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="demo_vopr", description="DEMO simulation target with planted bugs (vopr-json).")
    p.add_argument("-s", "--seed", type=int, default=0)
    p.add_argument("-n", "--iterations", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--max-events", type=int, default=10000)
    p.add_argument("-f", "--faults", default="network,storage")
    p.add_argument("--no-faults", action="store_true")
    p.add_argument("--checkpoint-file", default=None)
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return 1 if exc.code else 0
    faults = set() if args.no_faults else {f.strip() for f in args.faults.split(",")}
    network, storage = "network" in faults, "storage" in faults
    started = time.monotonic()
    failed: list[int] = []
    if args.json:
        emit("start", {"checkpoint_loaded": False, "iterations": args.iterations, "network_faults": network,
                       "starting_seed": args.seed, "storage_faults": storage})
    for seed in range(args.seed, args.seed + args.iterations):
        try:
            events, sim_ms = simulate(seed, args.max_events, network, storage)
            result = {"events": events, "seed": seed, "simulated_time_ms": sim_ms, "status": "ok"}
        except Violation as v:
            failed.append(seed)
            result = {"events": v.events, "invariant": v.invariant, "message": v.message, "seed": seed, "status": "failed"}
        except Panic as exc:
            sys.stdout.flush()
            line = exc.__traceback__.tb_next.tb_lineno if exc.__traceback__ and exc.__traceback__.tb_next else 0
            sys.stderr.write(f"thread 'main' panicked at runner/demo_vopr.py:{line}:17:\n{exc}\n"
                             "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n")
            sys.stderr.flush()
            return 101
        if args.json:
            emit("iteration", result)
        elif args.verbose or result["status"] != "ok":
            print(f"seed {seed}: {result['status']} {result.get('invariant', '')} {result.get('message', '')}".rstrip())
    elapsed = time.monotonic() - started
    if args.json:
        emit("batch_complete", {"elapsed_secs": round(elapsed, 6), "failed_seeds": failed, "failures": len(failed),
                                "rate": round(args.iterations / elapsed, 2) if elapsed > 0 else 0.0,
                                "successes": args.iterations - len(failed)})
    else:
        print(f"{args.iterations - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""A protocol-faithful fake simulator with failure injection, for the runner's tests.

`fake_vopr.py --json --seed N -n K` speaks vopr-json; `fake_vopr.py --exit-code SEED` is one exit-code run.
Behaviour comes from the JSON file named by $FAKE_VOPR_SPEC (keys are documented in `main`).
"""

import json
import os
import signal
import subprocess
import sys
import time


def timestamp():
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}+00:00"


def emit(kind, data):
    sys.stdout.write(json.dumps({"data": data, "timestamp": timestamp(), "type": kind}, sort_keys=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def once(spec, tag):
    """True the first time `tag` is seen (a marker file per tag), for faults that happen once only."""
    marker = os.path.join(spec["marker_dir"], tag)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def note(spec, seed, role):
    if spec.get("log"):
        with open(spec["log"], "a") as fh:
            fh.write(f"{seed} {role}\n")


def outcome(spec, seed, replay):
    """None for a pass, else (invariant, message); may also panic, hang, or SIGKILL itself."""
    key = str(seed)
    kill = spec.get("sigkill_at", {}).get(key)
    if kill == "always" or (kill == "once" and once(spec, f"kill-{seed}")):
        os.kill(os.getpid(), signal.SIGKILL)
    if (seed in spec.get("hang_at", []) and (not replay or spec.get("hang_on_replay", True))) or \
            (replay and seed in spec.get("replay_hang_at", [])):
        child = subprocess.Popen(["sleep", "3600"])  # must die with the process group
        with open(os.path.join(spec["marker_dir"], f"hang-child-{child.pid}"), "w"):
            pass
        time.sleep(3600)
    if seed in spec.get("panic_at", []):
        sys.stdout.flush()
        for _ in range(spec.get("stderr_flood_mib", 0)):  # a simulator that logs without end before it panics
            sys.stderr.write(("log: tick\n" * 104858)[: 1 << 20])
            sys.stderr.flush()
            time.sleep(0.05)
        sys.stderr.write("some earlier noise\nthread 'main' panicked at crates/kmb-sim/src/storage.rs:212:9:\n"
                         f"index out of bounds: the len is 4 but the index is {seed % 7 + 4}\n"
                         "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n")
        sys.stderr.flush()
        os._exit(101)
    if seed in spec.get("nondeterministic", []) and replay:
        return None
    if key in spec.get("fail", {}):
        f = spec["fail"][key]
        return f.get("invariant", "replica_consistency"), f.get("message", f"Replica divergence at time {seed * 1000 + 17}")
    every = spec.get("fail_every")
    if every and seed % every == every - 1:
        return "replica_consistency", f"Replica divergence at time {seed * 977}"
    return None


def main():
    spec = json.load(open(os.environ["FAKE_VOPR_SPEC"]))
    replay = os.environ.get("VOPR_RUNNER_REPLAY") == "1"
    role = "replay" if replay else "batch"
    args = sys.argv[1:]
    if spec.get("fail_to_start"):
        sys.stderr.write("error: unexpected argument '--bogus' found\n")
        return 1
    if args and args[0] == "--exit-code":
        seed = int(args[1])
        time.sleep(spec.get("delay_s", 0))
        result = outcome(spec, seed, replay)
        note(spec, seed, role)
        if result:
            sys.stdout.write(f"seed {seed}: running\n")
            sys.stderr.write(f"thread 1 panic: {result[0]}: {result[1]}\n")
            return spec.get("exit_status", 129)
        return 0
    seed, count = 0, 100
    for i, a in enumerate(args):
        if a in ("--seed", "-s"):
            seed = int(args[i + 1])
        if a in ("-n", "--iterations"):
            count = int(args[i + 1])
    emit("start", {"checkpoint_loaded": False, "iterations": count, "network_faults": True, "starting_seed": seed, "storage_faults": True})
    failed = []
    started = time.monotonic()
    for s in range(seed, seed + count + spec.get("extra_seeds", 0)):  # extra_seeds: a simulator that ignores -n
        if spec.get("delay_s"):
            time.sleep(spec["delay_s"])
        result = outcome(spec, s, replay)
        if s in spec.get("gap_at", []) and not replay:
            continue
        note(spec, s, role)  # before its line: a seed killed in between counts as run, so a rerun shows as redone
        if result:
            failed.append(s)
            emit("iteration", {"events": 57, "invariant": result[0], "message": result[1], "seed": s, "status": "failed"})
        else:
            emit("iteration", {"events": 100, "seed": s, "simulated_time_ms": 391.2, "status": "ok"})
        if s in spec.get("garbage_after", []):
            sys.stdout.write("this is not json {\n")
            sys.stdout.write('{"data":{},"timestamp":"x","type":"mystery"}\n')
            sys.stdout.flush()
    if not spec.get("no_complete"):
        elapsed = time.monotonic() - started
        emit("batch_complete", {"elapsed_secs": round(elapsed, 6), "failed_seeds": failed, "failures": len(failed),
                                "rate": round(count / elapsed, 2) if elapsed else 0.0, "successes": count - len(failed)})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

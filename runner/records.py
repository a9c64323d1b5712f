"""Failure records, reproduction commands and the signature index (schemas in docs/VOPR_DEPLOYMENT.md).

Pure functions over dicts: the service decides when they are written and counted.
"""

from __future__ import annotations

import json
import shlex

from runner import layout
from runner.signature import signature_id

KINDS = ("invariant", "crash", "timeout", "nondeterministic")
EXAMPLE_SEEDS_KEPT = 10
STDERR_TAIL_CHARS = 4000


def dumps(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"


def run_one_seed_command(simulator: dict, seed: int) -> str:
    if simulator["protocol"] == "exit-code":
        return simulator["command"].replace("{seed}", str(seed))
    return f"{simulator['command']} --json --seed {seed} -n 1 -v"


def reproduce(simulator: dict, seed: int) -> dict:
    """Check out the recorded commit, build, run the one seed: as a list of commands and as a script."""
    commands = []
    if simulator.get("repo_url"):
        commands += [f"git clone {shlex.quote(simulator['repo_url'])} vopr-repro", "cd vopr-repro"]
    if simulator.get("commit") and simulator["commit"] != "unknown":
        commands.append(f"git checkout {shlex.quote(simulator['commit'])}")
    if simulator.get("build_command"):
        commands.append(simulator["build_command"])
    commands.append(run_one_seed_command(simulator, seed))
    return {"commands": commands, "script": "set -e\n" + "\n".join(commands) + "\n"}


def new_record(*, deployment: str, seed: int, kind: str, signature: str, simulator: dict, host: dict,
               batch: tuple[int, int], detected_at: str, invariant: str | None = None, message: str | None = None,
               exit_status: int | None = None, signal: str | None = None, events: int | None = None,
               stderr_tail: str = "", simulator_timestamp: str | None = None, determinism: dict | None = None) -> dict:
    assert kind in KINDS, kind
    return {
        "schema": layout.SCHEMA_VERSION,
        "deployment": deployment,
        "seed": seed,
        "kind": kind,
        "original_kind": kind,
        "invariant": invariant,
        "message": message,
        "exit_status": exit_status,
        "signal": signal,
        "events": events,
        "stderr_tail": stderr_tail[-STDERR_TAIL_CHARS:],
        "signature": signature,
        "signature_id": signature_id(signature),
        "simulator": dict(simulator),
        "reproduce": reproduce(simulator, seed),
        "determinism": determinism or {"status": "pending"},
        "batch": {"first_seed": batch[0], "last_seed": batch[1]},
        "host": dict(host),
        "simulator_timestamp": simulator_timestamp,
        "detected_at": detected_at,
    }


def index_add(index: dict, record: dict) -> bool:
    """Count one record into the signature index; True when its signature is new."""
    sid = record["signature_id"]
    entry = index.get(sid)
    new = entry is None
    if new:
        entry = index[sid] = {
            "signature": record["signature"], "kind": record["original_kind"], "count": 0,
            "first_seen": record["detected_at"], "last_seen": record["detected_at"], "example_seeds": [],
            "reproducible": None, "replays_reproduced": 0, "replays_not_reproduced": 0,
        }
    entry["count"] += 1
    entry["first_seen"] = min(entry["first_seen"], record["detected_at"])
    entry["last_seen"] = max(entry["last_seen"], record["detected_at"])
    if len(entry["example_seeds"]) < EXAMPLE_SEEDS_KEPT and record["seed"] not in entry["example_seeds"]:
        entry["example_seeds"].append(record["seed"])
    index_replay(index, record)
    return new


def index_replay(index: dict, record: dict) -> None:
    """Fold a finished replay into `reproducible`: false if any replay disagreed, true once one agreed."""
    entry = index.get(record["signature_id"])
    status = record.get("determinism", {}).get("status")
    if entry is None or status not in ("reproduced", "not_reproduced"):
        return
    key = "replays_reproduced" if status == "reproduced" else "replays_not_reproduced"
    entry[key] = entry.get(key, 0) + 1
    if entry.get("replays_not_reproduced"):
        entry["reproducible"] = False
    elif entry.get("replays_reproduced"):
        entry["reproducible"] = True


def index_document(deployment: str, index: dict, updated_at: str) -> dict:
    return {"schema": layout.SCHEMA_VERSION, "deployment": deployment, "updated_at": updated_at, "signatures": index}

"""The runner's checkpoint: validated on load, restored from the local file or the newest valid store copy.

A corrupt or missing checkpoint never silently restarts from seed 0 when there is evidence of earlier runs.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from runner import layout
from runner.records import dumps, index_add, index_replay
from runner.seeds import replay_journal
from runner.store import StoreError, atomic_write

LOCAL_FILE = "checkpoint.json"
JOURNAL_FILE = "progress.journal"
TOTAL_KEYS = ("iterations", "failures", "signatures", "infra_faults", "unparsed_lines", "gaps", "nondeterministic")
PROGRESS_SAMPLE_S = 60
PROGRESS_KEPT_S = 3900  # every sample of the last 65 minutes, plus the newest older one: the hour's baseline
RECORDS_SCANNED_MAX = 200  # a store checkpoint without pending_replay_seeds (older runners): newest records read


class CheckpointError(Exception):
    """No usable checkpoint and a reason not to start from scratch; one line naming the fix."""


def problem(doc) -> str | None:
    """Why `doc` is not a usable checkpoint, or None."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("schema") != layout.SCHEMA_VERSION:
        return f"schema {doc.get('schema')!r} is not {layout.SCHEMA_VERSION}"
    ints = {k: doc.get(k) for k in ("next_seed", "allocated_until")}
    for key, value in ints.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"{key} {value!r} is not a seed"
    if ints["allocated_until"] < ints["next_seed"]:
        return "allocated_until is below next_seed"
    ranges = doc.get("ranges_in_flight")
    if not isinstance(ranges, list):
        return "ranges_in_flight is not a list"
    for entry in ranges:
        if (not isinstance(entry, list) or len(entry) != 3 or not all(isinstance(x, int) for x in entry)
                or not (entry[0] <= entry[2] <= entry[1] <= ints["allocated_until"])):
            return f"ranges_in_flight entry {entry!r} is not [start, end, resume_at]"
    totals = doc.get("totals")
    if not isinstance(totals, dict) or not all(isinstance(totals.get(k, 0), int) for k in TOTAL_KEYS):
        return "totals are missing or not counts"
    return None


def fresh(deployment: str, start_seed: int) -> dict:
    return {"schema": layout.SCHEMA_VERSION, "deployment": deployment, "next_seed": start_seed,
            "allocated_until": start_seed, "ranges_in_flight": [], "totals": {k: 0 for k in TOTAL_KEYS},
            "progress": [], "local": {}}


def add_progress_sample(samples, when: str, iterations: int) -> list[list]:
    """`samples` plus `[when, iterations]`, kept fit for "seeds in the last hour": in time order with counts that
    never go down (samples from a clock that was ahead, or unreadable ones, are dropped), at least
    PROGRESS_SAMPLE_S apart except the newest (a restart's sample gives way to the next one), and nothing older
    than PROGRESS_KEPT_S but the newest sample before that, so the baseline an hour back always stays."""
    now = _epoch(when)
    kept: list[tuple[float, list]] = []
    for sample in samples if isinstance(samples, list) else []:
        at = _epoch(sample[0]) if isinstance(sample, list) and len(sample) == 2 else None
        count = sample[1] if at is not None else None
        if (isinstance(count, int) and not isinstance(count, bool) and at <= now and count <= iterations
                and (not kept or (at >= kept[-1][0] and count >= kept[-1][1][1]))):
            kept.append((at, [sample[0], count]))
    if len(kept) >= 2 and kept[-1][0] - kept[-2][0] < PROGRESS_SAMPLE_S:
        kept.pop()
    if len(kept) >= 2 and kept[-1][0] == now:
        kept.pop()
    kept.append((now, [when, iterations]))
    cutoff = now - PROGRESS_KEPT_S
    older = [i for i, (at, _) in enumerate(kept) if at <= cutoff]
    return [sample for _, sample in kept[older[-1] if older else 0:]]


def _epoch(text) -> float | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def _parse(raw: bytes | None) -> tuple[dict | None, str | None]:
    if raw is None:
        return None, "missing"
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        return None, f"not JSON ({exc})"
    reason = problem(doc)
    return (doc, None) if reason is None else (None, reason)


def load_local(state_dir: Path, log) -> tuple[dict | None, bool]:
    """(checkpoint with the journal applied, or None; whether a corrupt local file was found and moved aside)."""
    path = state_dir / LOCAL_FILE
    if not path.exists():
        return None, False
    doc, reason = _parse(path.read_bytes())
    if doc is None:
        aside = path.with_name(f"{LOCAL_FILE}.corrupt-{int(time.time())}")
        path.replace(aside)
        journal = state_dir / JOURNAL_FILE
        if journal.exists():
            journal.replace(aside.with_name(aside.name + ".journal"))
        log.error("error", where="checkpoint", error=f"local checkpoint {path} is unusable ({reason}); moved to "
                  f"{aside.name}; restoring from the store")
        return None, True
    allocated, ranges, iterations, applied, bad = replay_journal(
        state_dir / JOURNAL_FILE, doc["allocated_until"], doc["ranges_in_flight"], doc["totals"]["iterations"])
    if bad:
        log.warning("journal_lines_ignored", count=bad, detail="torn or unreadable progress journal lines")
    doc["allocated_until"], doc["ranges_in_flight"] = allocated, ranges
    doc["totals"]["iterations"] = iterations
    doc["journal_lines_applied"] = applied
    return doc, False


def load_from_store(store, log) -> tuple[dict | None, str | None, list[str]]:
    """The newest valid store checkpoint: (doc, key, corrupt keys seen). Raises StoreError if unreachable."""
    corrupt: list[str] = []
    daily = sorted((k for k in store.list(layout.CHECKPOINT_DAILY_PREFIX) if k.endswith(".json")), reverse=True)
    for key in [layout.CHECKPOINT_LATEST] + daily:
        doc, reason = _parse(store.get(key))
        if doc is not None:
            index = doc.pop("signature_index", None)
            doc["local"] = {"signature_index": index if isinstance(index, dict) else _store_index(store, log)}
            return doc, key, corrupt
        if reason != "missing":
            corrupt.append(key)
            log.error("error", where="checkpoint", error=f"store checkpoint {store.where(key)} is unusable ({reason}); trying an older copy")
    return None, None, corrupt


def _store_index(store, log) -> dict:
    raw = store.get(layout.SIGNATURE_INDEX)
    try:
        index = json.loads(raw)["signatures"] if raw is not None else None
        if isinstance(index, dict):
            return index
    except (ValueError, KeyError, TypeError):
        pass
    found, keys = _store_records(store, log)
    log.warning("signature_index_rebuilt", records=keys, detail="store index missing or unreadable; rebuilt from failure records")
    index: dict = {}
    for seed, record in sorted(found.items()):
        try:
            index_add(index, record)
        except (KeyError, TypeError):
            log.warning("record_unreadable", key=layout.failure_key(seed))
    return index


def _store_records(store, log, below: int | None = None) -> tuple[dict[int, object], int]:
    """(seed -> parsed failure record, how many record keys were read) for the store's records, below `below`
    when given."""
    found: dict[int, object] = {}
    keys = 0
    for key in store.list(layout.FAILURES_PREFIX):
        seed = _seed_of(key)
        if seed is None or (below is not None and seed >= below):
            continue
        keys += 1
        try:
            found[seed] = json.loads(store.get(key) or b"null")
        except (ValueError, StoreError):
            log.warning("record_unreadable", key=key)
    return found, keys


def _counted(doc: dict, seed: int) -> bool:
    return seed < doc["next_seed"] or any(start <= seed < resume for start, _end, resume in doc["ranges_in_flight"])


def restore_replays(doc: dict, store, records_dir: Path, log) -> list[dict]:
    """The determinism replays a store checkpoint still owes (its `pending_replay_seeds`; for a checkpoint written
    before that field, the newest RECORDS_SCANNED_MAX records it counts that say `pending`). Each record is copied
    into `records_dir` for the replay to update; one whose replay finished after the checkpoint is folded into the
    checkpoint's index and totals instead. Raises StoreError if the store cannot be read."""
    seeds = doc.pop("pending_replay_seeds", None)
    scanned = None
    if not isinstance(seeds, list):
        counted = sorted((s for s in (_seed_of(k) for k in store.list(layout.FAILURES_PREFIX)) if s is not None
                          and _counted(doc, s)), reverse=True)
        seeds, scanned = counted[:RECORDS_SCANNED_MAX], len(counted)
    pending: list[dict] = []
    for seed in sorted(s for s in seeds if isinstance(s, int)):
        try:
            record = json.loads(store.get(layout.failure_key(seed)) or b"null")
            status = record["determinism"]["status"]
        except (ValueError, KeyError, TypeError):
            if scanned is None:
                log.warning("replay_dropped", seed=seed, detail=f"record {store.where(layout.failure_key(seed))} is missing or unreadable")
            continue
        if status == "pending":
            atomic_write(records_dir / f"{seed}.json", dumps(record))
            pending.append({"seed": seed, "attempts": 0})
        elif scanned is None:
            index_replay(doc["local"]["signature_index"], record)
            doc["totals"]["nondeterministic"] = doc["totals"].get("nondeterministic", 0) + (record.get("kind") == "nondeterministic")
    log.info("replays_restored", pending=[item["seed"] for item in pending], records_scanned=scanned,
             detail=None if scanned is None else f"checkpoint has no pending_replay_seeds: read the newest {min(scanned, RECORDS_SCANNED_MAX)} records")
    return pending


def _seed_of(key: str) -> int | None:
    name = key[len(layout.FAILURES_PREFIX):]
    return int(name[:-5]) if name.endswith(".json") and name[:-5].isdigit() else None


def restore(state_dir: Path, store, deployment: str, start_seed: int | None, log) -> tuple[dict, str]:
    """The checkpoint to resume from and where it came from ('local', a store key, or 'new')."""
    doc, corrupt_local = load_local(state_dir, log)
    if doc is not None:
        if start_seed is not None:
            raise CheckpointError(f"--start-seed {start_seed} given but {state_dir / LOCAL_FILE} already resumes at seed "
                                  f"{doc['next_seed']}: drop --start-seed (it only applies when there is no checkpoint)")
        return doc, "local"
    doc, key, corrupt_store = load_from_store(store, log)
    if doc is not None:
        if start_seed is not None:
            raise CheckpointError(f"--start-seed {start_seed} given but {store.where(key)} resumes at seed {doc['next_seed']}: "
                                  "drop --start-seed (it only applies when there is no checkpoint)")
        journal = state_dir / JOURNAL_FILE
        if journal.exists():
            journal.replace(journal.with_name(f"{JOURNAL_FILE}.stale-{int(time.time())}"))
        doc["local"]["pending_replays"] = restore_replays(doc, store, state_dir / "failures", log)
        return doc, store.where(key)
    if start_seed is None:
        evidence = []
        if corrupt_local:
            evidence.append(f"the local checkpoint in {state_dir} was corrupt")
        if corrupt_store:
            evidence.append(f"{store.where(corrupt_store[0])} is corrupt")
        if store.list(layout.FAILURES_PREFIX) or any((state_dir / "failures").glob("*.json")):
            evidence.append("failure records from earlier runs exist")
        if evidence:
            raise CheckpointError(f"no valid checkpoint, and {' and '.join(evidence)}: refusing to restart from seed 0; "
                                  "pass --start-seed N (e.g. the next_seed `vopr status` last showed) to resume there")
    doc = fresh(deployment, start_seed or 0)
    if start_seed:
        _fold_earlier_records(doc, store, state_dir / "failures", start_seed, log)
    return doc, "new"


def _fold_earlier_records(doc: dict, store, records_dir: Path, start_seed: int, log) -> None:
    """A --start-seed restart over earlier results: every failure record below the start seed (the store's, and the
    local copies not uploaded yet) goes back into the signature index and the failure totals, and the replays they
    still owe are queued again, so nothing recorded drops out of `vopr failures`. Records at or past the start seed
    are left to the rerun, which records them again. Raises StoreError if the store cannot be read."""
    found, _keys = _store_records(store, log, below=start_seed)
    for path in records_dir.glob("*.json"):
        if path.stem.isdigit() and int(path.stem) < start_seed:
            try:
                found[int(path.stem)] = json.loads(path.read_bytes())
            except (OSError, ValueError):
                log.warning("record_unreadable", key=str(path))
    index: dict = {}
    pending: list[dict] = []
    totals = doc["totals"]
    for seed, record in sorted(found.items()):
        try:
            index_add(index, record)
        except (KeyError, TypeError):
            log.warning("record_unreadable", key=layout.failure_key(seed))
            continue
        totals["failures"] += 1
        totals["nondeterministic"] += record.get("kind") == "nondeterministic"
        if record["determinism"].get("status") == "pending":
            atomic_write(records_dir / f"{seed}.json", dumps(record))
            pending.append({"seed": seed, "attempts": 0})
    totals["signatures"] = len(index)
    doc["local"] = {"signature_index": index, "pending_replays": pending}
    log.info("records_folded", records=totals["failures"], signatures=len(index), pending_replays=len(pending),
             detail=f"failure records below --start-seed {start_seed} kept in the index and totals")

"""Alert emails: what goes out when, and what it says.

At most one email an hour; a never-seen signature, a first nondeterministic replay or a batch with more than
20 failures goes out at once, but at most 5 of those an hour. Held-back alerts are summarised in the next email
(or in a digest when the hour is up). The limiter's state is saved with the checkpoint, so restarts cannot spam.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runner.logs import utc_from_epoch
from runner.signature import first_meaningful_line

HOUR_S = 3600.0
IMMEDIATE_PER_HOUR = 5
FLOOD_FAILURES = 20
SUBJECT_MAX_CHARS = 100
LATEST_SEEDS_SHOWN = 10
SUPPRESSED_SEEDS_KEPT = 20
SUPPRESSED_SIGNATURES_KEPT = 20


@dataclass
class Alert:
    reason: str  # new_signature | flood | nondeterministic | failure | error | digest
    records: list[dict] = field(default_factory=list)
    new_signatures: list[dict] = field(default_factory=list)
    batch: dict | None = None  # first_seed, last_seed, failures
    error: str | None = None

    @property
    def urgent(self) -> bool:
        return self.reason in ("new_signature", "flood", "nondeterministic")


class Limiter:
    def __init__(self, state: dict | None = None):
        state = state or {}
        self.last_sent: float | None = state.get("last_sent")
        self.immediate: list[float] = list(state.get("immediate_sent", []))
        self.held: dict = state.get("suppressed") or _empty_held()

    def to_json(self) -> dict:
        return {"last_sent": self.last_sent, "immediate_sent": self.immediate, "suppressed": self.held}

    def allows(self, alert: Alert, now: float) -> bool:
        self.immediate = [t for t in self.immediate if now - t < HOUR_S]
        if alert.urgent and len(self.immediate) < IMMEDIATE_PER_HOUR:
            return True
        return self.last_sent is None or now - self.last_sent >= HOUR_S

    def sent(self, alert: Alert, now: float) -> dict:
        """Record a send; returns the held-back summary to include (and forgets it)."""
        if alert.urgent:
            self.immediate.append(now)
        self.last_sent = now
        held, self.held = self.held, _empty_held()
        return held

    def hold(self, alert: Alert, now: float) -> None:
        h = self.held
        h["since"] = h["since"] or now
        h["alerts"] += 1
        h["failures"] += len(alert.records)
        h["seeds"] = (h["seeds"] + [r["seed"] for r in alert.records])[-SUPPRESSED_SEEDS_KEPT:]
        for r in alert.records:
            sig = h["signatures"].setdefault(r["signature_id"], {"signature": r["signature"], "count": 0})
            sig["count"] += 1
        if len(h["signatures"]) > SUPPRESSED_SIGNATURES_KEPT:
            keep = sorted(h["signatures"].items(), key=lambda kv: -kv[1]["count"])[:SUPPRESSED_SIGNATURES_KEPT]
            h["signatures"] = dict(keep)
        if alert.error:
            h["errors"] = (h["errors"] + [alert.error])[-5:]
        if alert.new_signatures:
            h["new_signatures"] += len(alert.new_signatures)

    def digest_due(self, now: float) -> bool:
        return bool(self.held["alerts"]) and (self.last_sent is None or now - self.last_sent >= HOUR_S)


def _empty_held() -> dict:
    return {"since": None, "alerts": 0, "failures": 0, "seeds": [], "signatures": {}, "errors": [], "new_signatures": 0}


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def ascii_line(text: str, limit: int) -> str:
    text = re.sub(r"\s+", " ", text.encode("ascii", "replace").decode("ascii")).strip()
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def subject(alert: Alert, deployment: str, held: dict) -> str:
    tag = f"[{deployment}]"
    latest = alert.records[-1] if alert.records else None
    if alert.reason == "new_signature":
        sig = alert.new_signatures[0]
        more = f" (+{len(alert.new_signatures) - 1} more)" if len(alert.new_signatures) > 1 else ""
        text = f"{tag} New failure{more}, seed {sig['seed']}: {sig['signature']}"
    elif alert.reason == "flood":
        text = f"{tag} {alert.batch['failures']} failures in batch {alert.batch['first_seed']}-{alert.batch['last_seed']}"
    elif alert.reason == "nondeterministic":
        text = f"{tag} Nondeterministic: seed {latest['seed']} did not fail the same way on replay"
    elif alert.reason == "failure":
        text = f"{tag} Failure, seed {latest['seed']}: {latest['signature']}"
    elif alert.reason == "error":
        text = f"{tag} Runner problem: {alert.error}"
    else:
        text = f"{tag} {held['failures']} failures held back in the last hour, latest seed {held['seeds'][-1] if held['seeds'] else '-'}"
    return ascii_line(text, SUBJECT_MAX_CHARS)


def body(alert: Alert, held: dict, ctx: dict) -> str:
    """ctx: deployment, host, now, totals, next_seed, store_url, checkpoint_url."""
    lines: list[str] = []
    totals = ctx["totals"]
    host = ctx["host"]
    instance = host.get("instance_id") or "not on EC2"
    headline = {
        "new_signature": "vopr-aws found a failure it has not seen before.",
        "flood": f"vopr-aws found more than {FLOOD_FAILURES} failures in one batch.",
        "nondeterministic": "A failing seed did not fail the same way when replayed on its own: the simulator is not deterministic.",
        "failure": "vopr-aws found a failing seed.",
        "error": "The runner has a problem that needs an operator.",
        "digest": "Alerts were held back by the rate limit in the last hour; here is what they said.",
    }[alert.reason]
    lines += [headline, ""]
    lines.append(f"Deployment: {ctx['deployment']}   Host: {host.get('hostname')} (instance {instance})   Time: {utc_from_epoch(ctx['now'])}")
    if alert.error:
        lines.append(f"Problem: {alert.error}")
    if alert.batch:
        lines.append(f"Batch: seeds {alert.batch['first_seed']}-{alert.batch['last_seed']}, "
                     f"{plural(alert.batch['failures'], 'failure')} in this batch so far")
    if alert.new_signatures:
        lines += ["", f"New signatures ({len(alert.new_signatures)}):"]
        for sig in alert.new_signatures:
            lines.append(f"  {sig['signature_id']}  {sig['signature']}  (first seed {sig['seed']})")
    if alert.records:
        shown = alert.records[-LATEST_SEEDS_SHOWN:]
        lines += ["", f"Latest failed seeds ({len(shown)} of {len(alert.records)} in this alert):"]
        for r in shown:
            detail = r.get("message") or first_meaningful_line(r.get("stderr_tail") or "")
            lines.append(f"  {r['seed']}  {r['kind']}  {ascii_line(r['signature'], 90)}")
            if detail and detail not in r["signature"]:
                lines.append(f"      {ascii_line(detail, 200)}")
    if held["alerts"]:
        since = utc_from_epoch(held["since"]) if held["since"] else "?"
        lines += ["", f"Held back by the rate limit since {since}: {plural(held['alerts'], 'alert')}, "
                  f"{plural(held['failures'], 'failure')}"
                  + (f", {plural(held['new_signatures'], 'new signature')}" if held["new_signatures"] else "")]
        if held["seeds"]:
            lines.append("  latest seeds: " + ", ".join(str(s) for s in held["seeds"]))
        for sid, sig in sorted(held["signatures"].items(), key=lambda kv: -kv[1]["count"]):
            lines.append(f"  {sig['count']} x {sid}  {sig['signature']}")
        for err in held["errors"]:
            lines.append(f"  problem: {err}")
    rate = f"1 in {totals['iterations'] // totals['failures']:,} seeds" if totals["failures"] else "none"
    lines += ["", f"Totals: {plural(totals['iterations'], 'seed')} run, {plural(totals['failures'], 'failure')} ({rate}), "
              f"{plural(totals['signatures'], 'signature')}, {totals.get('nondeterministic', 0)} nondeterministic; "
              f"next seed {ctx['next_seed']:,}"]
    example = alert.records[-1] if alert.records else None
    if alert.new_signatures:
        example = next((r for r in alert.records if r["signature_id"] == alert.new_signatures[0]["signature_id"]), example)
    if example:
        commit = (example["simulator"].get("commit") or "unknown")[:12]
        lines += ["", f"Reproduce seed {example['seed']} (commit {commit}):"]
        lines += [f"  {c}" for c in example["reproduce"]["commands"]]
    store = ctx["store_url"].rstrip("/")
    lines += ["", f"Failure records: {store}/failures/<seed>.json"
              + (f" (this one: {store}/failures/{example['seed']}.json)" if example else ""),
              f"Checkpoint: {store}/checkpoints/latest.json   Signatures: {store}/signatures/index.json",
              "", f"Alert policy: at most one email an hour; new signatures, nondeterministic replays and batches with "
              f"more than {FLOOD_FAILURES} failures go out at once (at most {IMMEDIATE_PER_HOUR} an hour); "
              "anything held back is summarised in the next email."]
    return "\n".join(lines) + "\n"

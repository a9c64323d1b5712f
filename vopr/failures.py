"""Failure triage: the signature index as rows (filtered by signature), and one failure record rendered for a human.

Pure functions over the runner's JSON (docs/VOPR_DEPLOYMENT.md "Storage layout"); the CLI prints what they return.
"""

from __future__ import annotations

from vopr import display


def reproducible_label(value) -> str:
    return {True: "yes", False: "NO", None: "pending"}.get(value, str(value))


def signature_rows(index: dict | None, signature: str | None = None) -> list[dict]:
    """One dict per signature, newest last_seen first; `signature` matches an id prefix or any part of the text."""
    rows = []
    for sig_id, entry in ((index or {}).get("signatures") or {}).items():
        seeds = entry.get("example_seeds") or []
        rows.append(
            {
                "signature_id": sig_id,
                "signature": entry.get("signature", ""),
                "kind": entry.get("kind", ""),
                "count": int(entry.get("count") or 0),
                "first_seen": entry.get("first_seen"),
                "last_seen": entry.get("last_seen"),
                "example_seed": seeds[0] if seeds else None,
                "example_seeds": seeds,
                "reproducible": entry.get("reproducible"),
            }
        )
    if signature:
        needle = signature.lower()
        rows = [r for r in rows if r["signature_id"].lower().startswith(needle) or needle in r["signature"].lower()]
    rows.sort(key=lambda r: (r["last_seen"] or "", r["count"]), reverse=True)
    return rows


def signature_table(rows: list[dict], title: str):
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    table.add_column("signature", overflow="fold", ratio=1, min_width=20)
    table.add_column("kind", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("first seen", no_wrap=True)
    table.add_column("last seen", no_wrap=True)
    table.add_column("example", justify="right", no_wrap=True)
    table.add_column("repro?", no_wrap=True)
    for r in rows:
        label = reproducible_label(r["reproducible"])
        style = {"yes": "green", "pending": "yellow"}.get(label, "bold red")
        table.add_row(
            f"[dim]{r['signature_id']}[/dim] {_escape(r['signature'])}",
            r["kind"],
            display.count(r["count"]),
            _short_time(r["first_seen"]),
            _short_time(r["last_seen"]),
            "-" if r["example_seed"] is None else str(r["example_seed"]),
            f"[{style}]{label}[/{style}]",
        )
    return table


WIDE_TABLE_MIN_COLUMNS = 110


def render_signatures(rows: list[dict], title: str, console) -> None:
    """A table on a wide terminal; on a narrow one (or a pipe at 80 columns) two lines per signature, nothing dropped."""
    if console.width >= WIDE_TABLE_MIN_COLUMNS:
        console.print(signature_table(rows, title))
        return
    console.print(title)
    for r in rows:
        label = reproducible_label(r["reproducible"])
        style = {"yes": "green", "pending": "yellow"}.get(label, "bold red")
        example = "-" if r["example_seed"] is None else str(r["example_seed"])
        console.print(f"[bold]{r['signature_id']}[/bold]  {_escape(r['signature'])}", soft_wrap=False)
        console.print(
            f"    {display.count(r['count'])} x {r['kind']}, seen {_short_time(r['first_seen'])} .. "
            f"{_short_time(r['last_seen'])}, e.g. seed {example}, repro: [{style}]{label}[/{style}]"
        )


def record_lines(record: dict) -> list[tuple[str, str]]:
    """(label, value) pairs describing one failure record, most useful first; absent fields are left out."""
    det = record.get("determinism") or {}
    sim = record.get("simulator") or {}
    host = record.get("host") or {}
    batch = record.get("batch") or {}
    kind = record.get("kind", "?")
    if record.get("original_kind") and record.get("original_kind") != kind:
        kind = f"{kind} (first run: {record['original_kind']})"
    pairs = [
        ("seed", str(record.get("seed"))),
        ("kind", kind),
        ("signature", f"{record.get('signature', '')}  [{record.get('signature_id', '')}]"),
        ("invariant", record.get("invariant")),
        ("message", record.get("message")),
        ("exit status", None if record.get("exit_status") is None else str(record.get("exit_status"))),
        ("signal", None if record.get("signal") is None else str(record.get("signal"))),
        ("events", None if record.get("events") is None else str(record.get("events"))),
        ("determinism", _determinism(det)),
        ("detected", record.get("detected_at")),
        ("commit", sim.get("commit")),
        ("repository", " @ ".join(x for x in (sim.get("repo_url"), sim.get("git_ref")) if x) or None),
        ("batch", f"seeds {batch['first_seed']}-{batch['last_seed']}" if "first_seed" in batch and "last_seed" in batch else None),
        ("host", " ".join(x for x in (host.get("hostname"), host.get("instance_id")) if x) or None),
    ]
    return [(k, v) for k, v in pairs if v not in (None, "")]


def _determinism(det: dict) -> str | None:
    status = det.get("status")
    if not status:
        return None
    if status == "reproduced":
        return f"reproduced on replay ({det.get('replayed_at', '')})".replace(" ()", "")
    if status == "not_reproduced":
        return f"NOT reproduced on replay: replay gave {det.get('replay_kind') or 'a pass'} (nondeterministic)"
    if status == "skipped":
        return f"replay skipped: {det.get('reason', 'no reason given')}"
    return status


def render_record(record: dict, console) -> None:
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, value in record_lines(record):
        grid.add_row(label, _escape(value))
    console.print(Panel(grid, title=f"failure: seed {record.get('seed')}", title_align="left", expand=False))
    tail = (record.get("stderr_tail") or "").rstrip()
    if tail:
        console.print("[bold]stderr (last lines)[/bold]")
        console.print(_escape(tail), markup=True)
    commands = (record.get("reproduce") or {}).get("commands") or []
    if commands:
        console.print("[bold]reproduce[/bold]")
        for cmd in commands:
            console.print(f"  {_escape(cmd)}")


def _short_time(value) -> str:
    when = display.parse_time(value)
    return when.strftime("%m-%d %H:%M") if when else "-"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))

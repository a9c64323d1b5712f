"""`vopr run`: map vopr.toml onto the runner's settings and run it in the foreground with a live rich display.

The runner's JSON log goes to a file (not the terminal); Ctrl-C asks it to stop, flush its checkpoint and return.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import threading
import time
from pathlib import Path

from vopr.errors import VoprError

DEMO_MODULE = "runner.demo_vopr"
REFRESH_PER_SECOND = 4
LOG_FILE_NAME = "runner.log"


def demo_command() -> str:
    return f"{shlex.quote(sys.executable)} -m {DEMO_MODULE}"


def runner_argv(cfg, demo: bool, store: str, max_seconds=None, max_batches=None, workdir: Path | None = None,
                log_file: Path | None = None, region: str | None = None, start_seed: int | None = None) -> list[str]:
    """The `python -m runner` flags equivalent to this config (demo: the bundled simulator, no build)."""
    sim, r = cfg.simulator, cfg.runner
    argv = ["--store", store, "--deployment", cfg.deployment.name, "--metrics", "log",
            "--batch-size", str(r.batch_size), "--seed-timeout-s", str(r.seed_timeout_s), "--workers", str(r.workers)]
    if demo:
        argv += ["--simulator-command", demo_command(), "--protocol", "vopr-json", "--workdir", str(workdir or ".")]
    else:
        argv += ["--simulator-command", sim.command, "--protocol", sim.protocol, "--workdir", str(workdir or "."),
                 "--repo-url", sim.repo_url, "--git-ref", sim.git_ref, "--build-command", sim.build_command]
    if max_seconds is not None:
        argv += ["--max-seconds", str(max_seconds)]
    if max_batches is not None:
        argv += ["--max-batches", str(max_batches)]
    if log_file is not None:
        argv += ["--log-file", str(log_file)]
    if start_seed is not None:
        argv += ["--start-seed", str(start_seed)]
    if region:
        argv += ["--region", region]
    return argv


def settings_for(cfg, demo: bool = False, store: str = "vopr-results", max_seconds=None, max_batches=None,
                 workdir: Path | None = None, log_file: Path | None = None, region: str | None = None,
                 start_seed: int | None = None):
    """Validated runner Settings; the log goes to <state dir>/runner.log unless --log-file says otherwise."""
    from runner import settings as runner_settings

    if store.startswith("s3://") and not region:
        from vopr.aws import env_region

        region = env_region() or cfg.deployment.region
    argv = runner_argv(cfg, demo, store, max_seconds, max_batches, workdir, log_file, region, start_seed)
    try:
        settings = runner_settings.parse(argv, os.environ)
    except runner_settings.SettingsError as exc:
        hint = "" if demo else " (the simulator comes from simulator.command in vopr.toml; --demo runs the bundled one)"
        raise VoprError(f"{exc}{hint}", exit_code=2) from None
    if not settings.log_file:
        path = settings.resolved_state_dir / LOG_FILE_NAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VoprError(f"cannot use --store {store}: {exc.strerror} ({path.parent}): pass a writable directory "
                            "or s3://bucket/prefix", exit_code=2) from None
        settings = runner_settings.replace(settings, log_file=str(path))
    return settings


class Display:
    """The live panel: holds the latest progress snapshot (written by the runner's callback) and renders it."""

    def __init__(self, settings, demo_label: str):
        self.settings = settings
        self.label = demo_label
        self.snapshot: dict = {}
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def update(self, snapshot: dict) -> None:
        with self._lock:
            self.snapshot = dict(snapshot)

    def __rich__(self):
        from rich.markup import escape
        from rich.panel import Panel
        from rich.table import Table

        from vopr import display

        with self._lock:
            s = dict(self.snapshot)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        elapsed = s.get("elapsed_s", time.monotonic() - self.started)
        limit = self.settings.max_seconds
        grid.add_row("seeds done", f"{display.count(s.get('iterations_total'))}  "
                     f"[dim](this run {display.count(s.get('iterations_this_run'))}; every seed below {display.count(s.get('next_seed'))} done)[/dim]")
        grid.add_row("rate", f"{display.rate(s.get('seeds_per_second'))} on {s.get('workers', '-')} worker(s)")
        failures = s.get("failures_total")
        style = "red" if failures else "green"
        grid.add_row("failures", f"[{style}]{display.count(failures)}[/{style}] in {display.count(s.get('signatures_total'))} signature(s)")
        last = s.get("last_failure")
        if last:
            grid.add_row("last failure", escape(f"seed {last.get('seed')}  {last.get('kind')}  {last.get('signature')}"))
        grid.add_row("batches", display.count(s.get("batches_this_run")))
        timing = display.duration(elapsed) + (f" of {display.duration(limit)}" if limit else "  (Ctrl-C stops)")
        if s.get("stopping"):
            timing += "  [yellow]stopping: flushing the checkpoint[/yellow]"
        grid.add_row("elapsed", timing)
        title = f"vopr run: {escape(self.label)} -> {escape(self.settings.store)}"
        return Panel(grid, title=title, title_align="left", expand=False)


def run(settings, console, demo_label: str | None = None) -> int:
    """Run the runner to completion (or Ctrl-C) with the live display; returns the runner's exit status.

    The runner installs its own SIGINT/SIGTERM handlers (stop after flushing), so Ctrl-C is a clean stop.
    """
    from rich.live import Live

    from runner import service
    from runner.settings import SettingsError
    from vopr import display

    label = demo_label or ("demo simulator" if DEMO_MODULE in settings.simulator_command else settings.simulator_command)
    view = Display(settings, label)
    console.print(f"[dim]runner log: {settings.log_file}[/dim]")
    live = Live(view, console=console, refresh_per_second=REFRESH_PER_SECOND, transient=False)

    def on_progress(snapshot: dict) -> None:  # the panel appears once the runner has started, not before a refusal
        view.update(snapshot)
        if not live.is_started:
            live.start()

    try:
        code = service.run(settings, on_progress=on_progress)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted before the runner started: nothing was run[/yellow]")
        return 130
    except SettingsError as exc:
        raise VoprError(_for_vopr_run(str(exc), settings.store), exit_code=2) from None
    finally:
        if live.is_started:
            live.stop()
    if not console.is_terminal:
        console.line()
    if code != 0:
        raise VoprError(f"the simulator never started ({settings.simulator_command}): check simulator.command and "
                        f"--workdir, and that it is built; the errors are in {settings.log_file}", exit_code=code)
    s = view.snapshot
    console.print(
        f"done: {display.count(s.get('iterations_this_run'))} seeds this run, {display.count(s.get('failures_total'))} "
        f"failure(s) in {display.count(s.get('signatures_total'))} signature(s) in total; results in {settings.store}",
        soft_wrap=True,
    )
    store = shlex.quote(settings.store)
    console.print(f"next: `vopr status --store {store}` and `vopr failures --store {store}`", soft_wrap=True)
    return code


def _for_vopr_run(message: str, store: str) -> str:
    """The runner's refusal, with the fix said in `vopr run`'s terms (it has --store, not --state-dir)."""
    if message.startswith("another runner is using"):
        return (f"another runner is using {store}: stop it first (Ctrl-C its `vopr run`; on an instance, "
                "`systemctl stop vopr-runner`) or pass another --store")
    return re.sub(r"pass --start-seed N\b", "pass `vopr run --start-seed N`", message)

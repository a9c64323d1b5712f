"""The runner's loop: keep every core busy running the simulator over fresh seeds, and never lose a failing seed.

Design (in the spirit of TigerBeetle's cfo.zig):

- One thread, one loop. Each iteration: start simulator processes for free worker slots, wait READ_EVERY_S (or
  less: a simulator's exit wakes the loop through its pidfd), read what each one appended to its output file,
  handle it, reap the ones that ended, kill the ones that hang, then do the timed work (save progress, queue
  uploads, metrics, alerts). Nothing on this path waits on the network:
  S3, SNS and CloudWatch calls go through the on-disk outbox, drained by a background thread.
- Seeds: each process gets a disjoint range [start, end) (SeedLedger). A range's progress is the first seed
  it has not reported. The checkpoint's `next_seed` is the lowest unfinished seed of any range, so it never
  claims a seed done before every lower seed is done. Progress is fsynced to the local checkpoint every
  STATE_SYNC_S and journalled (plain appends) between.
- Simulators write to files (runner.procs), never to pipes, so nothing they print dies with the runner. A
  runner that starts kills any simulator a killed runner left running, reads the files left behind from the
  range's checkpointed progress on (recording and counting what it finds, as if it had read it live), and
  resumes each range at its first unreported seed: `kill -9` of the runner redoes at most the seed each
  process had in flight. A file is deleted only after a checkpoint holds everything read from it.
- A failing seed is written (local record, fsynced, plus an outbox entry) before it is counted; the
  checkpoint that counts it also moves progress past it, in one atomic write. So a seed is rerun only if it
  was never counted, and counting it then is right.
- Throughput: output is read in large chunks every READ_EVERY_S and scanned with byte searches
  (runner.protocol); processes are grown until each runs about --process-target-s (and writes at most
  OUTPUT_BYTES_PER_PROCESS_MAX), so process start-up is amortised. bench/bench_runner.py measures what is left
  next to simulators doing 55,000 seeds/s each: about 0.6% of their CPU time, mostly the kernel copying the file
  and one pass counting newlines, which is what lets a gap or a stray line inside a run of passing lines be
  noticed.
- Every failing seed is replayed once on its own (one extra process at a time, off the main seed stream); the
  queue lives in the checkpoint, is bounded by --replay-backlog, and beyond it records say `skipped`.

Explicit limits: a SIGKILLed simulator is retried once at the same seed, and the second SIGKILL there is
recorded as a crash (the retry count lives in memory: a runner restart allows one more try). Gap seeds are
recorded up to GAP_RECORDS_PER_GAP per gap. A store checkpoint lags the local one by at most
STORE_CHECKPOINT_EVERY_S, so a new instance restoring from the store may redo up to that much work.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import subprocess
import threading
import time
from collections import deque

import runner
from runner import alerts, checkpoint, layout, records
from runner.imds import Imds, SpotWatcher
from runner.logs import Logger, utc_now
from runner.outbox import Outbox, metric_timestamp
from runner.procs import OUTPUT_DIR, SimProcess, kill_left_behind
from runner.protocol import Feed, JsonStream
from runner.seeds import SeedLedger
from runner.settings import Settings, SettingsError, validate
from runner.signature import crash_signature, first_meaningful_line, invariant_signature, signal_name, signature_id
from runner.store import LocalStore, StoreError, atomic_write, make_client, open_store

READ_EVERY_S = 0.1
POLL_WITHOUT_PIDFD_S = 0.01  # where pidfd_open is missing, exits are noticed by polling this often
STDERR_BYTES_MAX = 16 << 20  # per process; beyond it the file is emptied and its tail kept in memory
OUTPUT_BYTES_PER_PROCESS_MAX = 256 << 20  # batch growth stops where a process's stdout file would exceed it
STATE_SYNC_S = 30.0
STORE_CHECKPOINT_EVERY_S = 60.0
STORE_CHECKPOINT_MIN_GAP_S = 10.0
DAILY_COPY_EVERY_S = 600.0
METRICS_EVERY_S = float(os.environ.get("VOPR_RUNNER_METRICS_INTERVAL_S", "60"))
PROGRESS_CALLBACK_S = 0.25
RATE_WINDOW_S = 30.0
START_BACKOFF_MAX_S = 300.0
GAP_RECORDS_PER_GAP = 10
UNPARSED_LOGGED_PER_PROCESS = 5
MAX_BATCH_SEEDS = 50_000_000
READS_PER_TURN_MAX = 64  # of protocol.READ_BYTES each: a process that wrote more is read further next turn
DRAIN_REPLAYS_MAX_S = 60.0
SHUTDOWN_FLUSH_S = 60.0
EXTERNAL_KILL_SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT", "SIGHUP")
REPLAY_ENV = "VOPR_RUNNER_REPLAY"
TIMEOUT_SIGNATURE = "timeout: no result within the seed timeout"


def run(settings: Settings, on_progress=None, stop_event: threading.Event | None = None) -> int:
    """Run until a limit, SIGTERM/SIGINT, a spot notice or `stop_event`; returns 0, or 1 if the simulator never
    started (every attempt failed and no seed ran). Raises SettingsError for bad
    settings, an unusable state directory or log file, or an unusable checkpoint (one line; exit 2)."""
    validate(settings)
    try:
        runner_ = Runner(settings, on_progress, stop_event)
    except OSError as exc:
        raise SettingsError(f"cannot open --log-file {settings.log_file}: {exc.strerror}: pick a writable path") from None
    return runner_.run()


class Runner:
    def __init__(self, settings: Settings, on_progress=None, stop_event: threading.Event | None = None):
        self.s = settings
        self.on_progress = on_progress
        self.stop_event = stop_event or threading.Event()
        self.log = Logger(settings.deployment, settings.log_file)
        self.state_dir = settings.resolved_state_dir
        self.records_dir = self.state_dir / "failures"
        self.workers = settings.worker_count
        self.procs: list[SimProcess] = []
        self.sel = selectors.DefaultSelector()
        self.stop_reason: str | None = None
        self.stopping = False
        self.draining_since: float | None = None
        self.run_started = time.monotonic()
        self.batches_started = 0
        self.batches_this_run = 0
        self.iterations_at_start = 0
        self.last_failure: dict | None = None
        self.start_failures = 0
        self.start_backoff_until = 0.0
        self.sigkill_seeds: dict[int, int] = {}
        self.step_records: list[dict] = []
        self.step_new: list[dict] = []
        self.step_flood = False
        self.step_batch: dict | None = None
        self.state_dirty = False
        self.out_dir = self.state_dir / OUTPUT_DIR
        self.spent: list[SimProcess] = []  # ended batches whose output files wait for the next checkpoint
        self.index_dirty = True
        self.store_wanted = True
        self.iterations_journaled = 0
        self.rate_samples: deque[tuple[float, int]] = deque()
        now = time.monotonic()
        self.last_sync = self.last_store = self.last_metrics = self.last_sample = self.last_callback = now
        self.last_daily = -DAILY_COPY_EVERY_S
        self.next_progress_sample = now + checkpoint.PROGRESS_SAMPLE_S

    # -- start-up -------------------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.records_dir.mkdir(parents=True, exist_ok=True)
            self.out_dir.mkdir(exist_ok=True)
            self._lock_fh = open(self.state_dir / ".lock", "a+")
        except OSError as exc:
            self.log.close()
            raise SettingsError(f"cannot use --state-dir {self.state_dir}: {exc.strerror}: create it writable for this "
                                "user or pass another") from None
        previous = self._install_signals()
        try:
            self._lock_state_dir()
            imds = Imds()
            self.host = {"hostname": socket.gethostname(), "instance_id": imds.instance_id()}
            self.simulator = self._simulator_info()
            self.store = self._open_store()
            restored = self._restore()
            if restored is None:
                self.log.info("shutdown", reason=self.stop_reason, detail="stopped before the store could be reached")
                return 0
            self._adopt(restored[0])
            self.outbox = Outbox(self.state_dir / "outbox", self.store, self.log, publish=self._sns_publisher(),
                                 put_metrics=self._metrics_putter())
            self.outbox.start()
            self.spot = SpotWatcher(imds, self._spot_notice, self.log)
            self.spot.start()
            self.log.info("runner_started", version=runner.__version__, source=restored[1], next_seed=self.ledger.next_seed,
                          ranges_in_flight=self.ledger.ranges_in_flight(), workers=self.workers, protocol=self.s.protocol,
                          command=self.s.simulator_command, store=self.store.url, state_dir=str(self.state_dir),
                          commit=self.simulator["commit"], host=self.host, pending_replays=len(self.pending_replays))
            self._recover_outputs()
            self._sync_state()
            try:
                self._loop()
            except Exception as exc:  # a runner bug: say so in the log (RunnerErrors), leave no simulator behind
                self.log.error("error", where="loop", error=f"{type(exc).__name__}: {exc}",
                               detail="runner bug: stopping; progress up to the last checkpoint is kept")
                raise
            return self._shutdown()
        finally:
            for proc in self.procs:
                proc.signal_group(signal.SIGKILL)
            self._restore_signals(previous)
            self.log.close()
            self._lock_fh.close()

    def _lock_state_dir(self) -> None:
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SettingsError(f"another runner is using {self.state_dir}: stop it first (systemctl stop vopr-runner) "
                                "or pass a different --state-dir") from None

    def _simulator_info(self) -> dict:
        def git(*args: str) -> str | None:
            try:
                out = subprocess.run(["git", *args], cwd=self.s.workdir, capture_output=True, text=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                return None
            return out.stdout.strip() or None if out.returncode == 0 else None

        return {"repo_url": self.s.repo_url or git("remote", "get-url", "origin"), "git_ref": self.s.git_ref,
                "commit": self.s.simulator_commit or git("rev-parse", "HEAD") or "unknown",
                "protocol": self.s.protocol, "command": self.s.simulator_command, "build_command": self.s.build_command}

    def _open_store(self):
        if not self.s.is_s3:
            return LocalStore(self.s.store)
        client = make_client("s3", self.s.region, max_attempts=3, connect_timeout_s=3, read_timeout_s=10)
        return open_store(self.s.store, self.s.region, client=client)

    def _restore(self) -> tuple[dict, str] | None:
        """Restore, waiting out an unreachable store (starting blind could overwrite a newer checkpoint);
        None when told to stop while waiting."""
        delay = 1.0
        while True:
            try:
                doc, source = checkpoint.restore(self.state_dir, self.store, self.s.deployment, self.s.start_seed, self.log)
                break
            except checkpoint.CheckpointError as exc:
                raise SettingsError(str(exc)) from None
            except StoreError as exc:
                self.log.error("error", where="restore", error=f"{exc}; retrying in {delay:.0f} s",
                               detail="not starting from scratch while the store's checkpoint cannot be read")
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    if self.stop_event.is_set() or self.stop_reason:
                        self._request_stop(self.stop_reason or "stop_event")
                        return None
                    time.sleep(0.1)
                delay = min(START_BACKOFF_MAX_S, delay * 2)
        self.log.info("checkpoint_restored", source=source, next_seed=doc["next_seed"],
                      journal_lines=doc.pop("journal_lines_applied", 0))
        return doc, source

    def _adopt(self, doc: dict) -> None:
        local = doc.get("local") or {}
        self.ledger = SeedLedger(doc["allocated_until"], doc["ranges_in_flight"], self.state_dir / checkpoint.JOURNAL_FILE,
                                 end_seed=self.s.end_seed)
        self.totals = {k: int(doc["totals"].get(k, 0)) for k in checkpoint.TOTAL_KEYS}
        self.index: dict = local.get("signature_index") or {}
        self.totals["signatures"] = max(self.totals["signatures"], len(self.index))
        self.pending_replays: list[dict] = local.get("pending_replays") or []
        self.limiter = alerts.Limiter(local.get("alert_limiter"))
        self.metrics_base = local.get("metrics_base") or {"time": time.time(), **self.totals}
        self.batch_seeds = max(self.s.batch_size, int(doc.get("batch_seeds") or 0)) if self.s.process_target_s else self.s.batch_size
        self.iterations_at_start = self.iterations_journaled = self.totals["iterations"]
        self.started_at = utc_now()
        self.progress_samples = checkpoint.add_progress_sample(doc.get("progress"), self.started_at, self.totals["iterations"])

    def _sns_publisher(self):
        if not self.s.alert_topic:
            return None
        client = make_client("sns", self.s.region, max_attempts=3, connect_timeout_s=3, read_timeout_s=10)
        return lambda subject, message: client.publish(TopicArn=self.s.alert_topic, Subject=subject, Message=message)

    def _metrics_putter(self):
        if self.s.metrics != "cloudwatch":
            return None
        client = make_client("cloudwatch", self.s.region, max_attempts=3, connect_timeout_s=3, read_timeout_s=10)
        return lambda data: client.put_metric_data(Namespace=layout.METRICS_NAMESPACE, MetricData=data)

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        handler = lambda signum, _frame: self._request_stop(signal.Signals(signum).name)  # noqa: E731
        return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _restore_signals(self, previous) -> None:
        for sig, old in (previous or {}).items():
            signal.signal(sig, old)

    def _request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def _spot_notice(self, notice: str) -> None:
        self.log.warning("spot_interruption", notice=notice[:500])
        self._request_stop("spot_interruption")

    def _recover_outputs(self) -> None:
        """Read what simulators wrote that no runner read: the files a killed runner left in out/. Simulators it
        left running are killed first. For each batch range still in flight, the seeds from its checkpointed
        progress on are handled as if read live; everything else (replays, exit-code runs, finished ranges)
        is simply run again. The files go once a checkpoint holds what they said."""
        killed = kill_left_behind(self.out_dir)
        if killed:
            self.log.warning("orphans_killed", pids=killed, detail="simulators a killed runner left running")
        left: list[SimProcess] = []
        for path in self.out_dir.iterdir():
            proc = SimProcess.left_behind(path)
            if proc is not None:
                left.append(proc)
            elif path.suffix != ".err" or not path.with_suffix(".out").exists():
                path.unlink()
        left.sort(key=lambda p: (p.range_start, p.out_path.name.rsplit("-", 1)[1]))
        for proc in left:
            if proc.role == "batch" and self.s.protocol == "vopr-json" and proc.range_start in self.ledger.ranges:
                self._recover_batch(proc)
        if left:
            self._sync_state()
            for proc in left:
                proc.remove_files()

    def _recover_batch(self, proc: SimProcess) -> None:
        resume = self.ledger.ranges[proc.range_start][1]
        proc.stream = JsonStream(proc.first_seed, proc.end_seed)
        feed = Feed()
        with open(proc.out_path, "rb") as fh:
            while (more := proc.stream.read_from(fh.fileno())) is not None:
                more.unparsed.clear()  # already counted by the runner that read them, or not worth a second count
                feed.merge(more)
        feed.merge(proc.stream.finish())
        reached = proc.stream.expected
        if feed.complete is not None and reached < proc.end_seed:
            feed.gaps.append((reached, proc.end_seed - 1))
            reached = proc.end_seed
        if reached <= resume:
            return
        proc.batch = {"first_seed": resume, "started": time.monotonic(), "failures": 0, "iterations": 0}
        gaps = [(max(first, resume), last) for first, last in feed.gaps if last >= resume]
        self._count(proc, reached - resume - sum(last - first + 1 for first, last in gaps))
        for first, last in gaps:
            self._record_gap(proc, first, last)
        for failure in feed.failures:
            if failure["seed"] >= resume:
                self._record_invariant(proc, failure)
        self.ledger.progress(proc.range_start, reached)
        self.log.info("output_recovered", file=proc.out_path.name, first_seed=resume, last_seed=reached - 1,
                      failures=proc.batch["failures"], detail="read from the file a killed runner left")
        self._batch_ended(proc, None, "recovered", resume, reached)

    # -- the loop ---------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            began = time.monotonic()
            self._check_limits(began)
            if not self.stopping:
                self._start_processes(began)
            if not self.procs and (self.stopping or self._finished()):
                return
            if not self.procs:
                timeout = max(0.05, min(1.0, self.start_backoff_until - began))
            elif all(p.pidfd is not None for p in self.procs):
                timeout = READ_EVERY_S
            else:
                timeout = POLL_WITHOUT_PIDFD_S
            self.sel.select(timeout)  # returns early when a simulator exits
            self._read_outputs()
            self._reap()
            self._check_timeouts()
            self._tick()

    def _check_limits(self, now: float) -> None:
        if self.stop_event.is_set():
            self._request_stop("stop_event")
        if self.s.max_seconds is not None and now - self.run_started >= self.s.max_seconds:
            self._request_stop("max_seconds")
        if self.stop_reason and not self.stopping:
            self.stopping = True
            self.log.info("stopping", reason=self.stop_reason, processes=len(self.procs))
            for proc in self.procs:
                proc.kill("stop")

    def _batches_allowed(self) -> bool:
        return self.s.max_batches is None or self.batches_started < self.s.max_batches

    def _finished(self) -> bool:
        """A bounded run (--max-batches, --end-seed) is over once its batches and its replays are done."""
        if self._batches_allowed() and not self.ledger.exhausted():
            return False
        now = time.monotonic()
        if self.draining_since is None:
            self.draining_since = now
        return not self.pending_replays or now - self.draining_since > DRAIN_REPLAYS_MAX_S

    def _start_processes(self, now: float) -> None:
        if now < self.start_backoff_until or len(self.procs) > self.workers or (len(self.procs) == self.workers and not self.pending_replays):
            return  # every slot busy (the common case)
        batches = [p for p in self.procs if p.role == "batch"]
        while len(batches) < self.workers and self._batches_allowed():
            claim = self.ledger.take_resumable() or self.ledger.allocate(self.batch_seeds, self.totals["iterations"])
            if claim is None:
                break
            proc = self._spawn_batch(*claim)
            if proc is None:
                return
            batches.append(proc)
        if self.pending_replays and not any(p.role == "replay" for p in self.procs):
            self._spawn_replay(self.pending_replays[0])

    def _spawn(self, argv: list[str], role: str, range_start: int, first: int, end: int, env=None) -> SimProcess | None:
        try:
            proc = SimProcess.start(argv, self.s.workdir, role, range_start, first, end, self.out_dir, env=env)
        except OSError as exc:
            self._start_failed(f"cannot start {argv[0]!r}: {exc.strerror or exc}", None)
            return None
        if self.s.protocol == "vopr-json":
            proc.stream = JsonStream(first, end)
        else:
            proc.got_start = True
        if proc.pidfd is not None:
            self.sel.register(proc.pidfd, selectors.EVENT_READ, proc)
        self.procs.append(proc)
        return proc

    def _seed_argv(self, first: int, count: int) -> list[str]:
        argv = self.s.command_argv()
        if self.s.protocol == "exit-code":
            return [a.replace("{seed}", str(first)) for a in argv]
        return argv + ["--json", "--seed", str(first), "-n", str(count)]

    def _spawn_batch(self, start: int, first: int, end: int) -> SimProcess | None:
        count = 1 if self.s.protocol == "exit-code" else end - first
        proc = self._spawn(self._seed_argv(first, count), "batch", start, first, end)
        if proc is None:
            self.ledger.release(start)
            return None
        self.batches_started += 1
        proc.batch = {"first_seed": first, "started": proc.started, "failures": 0, "iterations": 0}
        return proc

    def _spawn_replay(self, item: dict) -> None:
        env = dict(os.environ, **{REPLAY_ENV: "1"})
        proc = self._spawn(self._seed_argv(item["seed"], 1), "replay", item["seed"], item["seed"], item["seed"] + 1, env=env)
        if proc is not None:
            proc.replay_of = item

    # -- reading output ---------------------------------------------------------------------------------------

    def _read_outputs(self) -> None:
        """What each simulator appended since the last turn. A process seen exited before its file is read to
        the end has nothing more to say: its output is then finished."""
        for proc in self.procs:
            if proc.output_done:
                continue
            ended = proc.exited()
            if proc.stream is not None:
                for _ in range(READS_PER_TURN_MAX):
                    feed = proc.stream.read_from(proc.out_fd)
                    if feed is None:
                        break
                    proc.out_bytes += feed.bytes_read
                    self._handle(proc, feed)
                else:
                    continue  # more than a turn's share: the rest next turn, even if the process has ended
                if ended:
                    self._handle(proc, proc.stream.finish())
            proc.output_done = ended

    def _handle(self, proc: SimProcess, feed) -> None:
        if feed.start is not None:
            proc.got_start = True
            self.start_failures = 0
        if feed.completed:
            proc.last_progress = time.monotonic()
        if proc.role == "replay":
            proc.replay_failures += feed.failures
            return
        if feed.complete is not None:
            proc.complete = feed.complete
        self._count(proc, feed.completed)
        for first, last in feed.gaps:
            self._record_gap(proc, first, last)
        for failure in feed.failures:
            self._record_invariant(proc, failure)
        if feed.unparsed:
            self._unparsed(proc, feed.unparsed)
        self.ledger.progress(proc.range_start, proc.stream.expected)

    def _unparsed(self, proc: SimProcess, lines: list[bytes]) -> None:
        self.totals["unparsed_lines"] += len(lines)
        proc.unparsed += len(lines)
        self.state_dirty = True
        if proc.unparsed - len(lines) < UNPARSED_LOGGED_PER_PROCESS:
            self.log.warning("unparsed_line", count=len(lines), pid=proc.pid, near_seed=proc.stream.expected,
                             samples=[line.decode("utf-8", "replace")[:200] for line in lines[:3]],
                             detail=f"logged for the first {UNPARSED_LOGGED_PER_PROCESS} per process; all are counted")

    # -- recording failures -----------------------------------------------------------------------------------

    def _record_invariant(self, proc: SimProcess, failure: dict) -> None:
        self._record(proc, failure["seed"], "invariant", invariant_signature(failure.get("invariant"), failure.get("message")),
                     invariant=failure.get("invariant"), message=failure.get("message"), events=failure.get("events"),
                     exit_status=None, simulator_timestamp=failure.get("timestamp"))

    def _record(self, proc: SimProcess, seed: int, kind: str, signature: str, determinism: dict | None = None, **fields) -> dict:
        """Write the record (local, fsynced, and queued for the store), then count it."""
        if determinism is None and len(self.pending_replays) >= self.s.replay_backlog:
            determinism = {"status": "skipped", "reason": f"replay backlog full ({self.s.replay_backlog} pending)"}
        fields.setdefault("stderr_tail", proc.tail_text() if kind in ("crash", "timeout") or self.s.protocol == "exit-code" else "")
        record = records.new_record(
            deployment=self.s.deployment, seed=seed, kind=kind, signature=signature, simulator=self.simulator,
            host=self.host, batch=(proc.first_seed, proc.end_seed - 1), detected_at=utc_now(), determinism=determinism,
            **fields)
        self._write_record(record)
        self.totals["failures"] += 1
        self.totals["nondeterministic"] += kind == "nondeterministic"
        new = records.index_add(self.index, record)
        self.totals["signatures"] = len(self.index)
        self.index_dirty = self.state_dirty = self.store_wanted = True
        if record["determinism"]["status"] == "pending":
            self.pending_replays.append({"seed": seed, "attempts": 0})
        proc.batch["failures"] += 1
        self.step_records.append(record)
        if new:
            self.step_new.append({"signature_id": record["signature_id"], "signature": signature, "seed": seed})
        self.step_batch = {"first_seed": proc.batch["first_seed"], "last_seed": proc.end_seed - 1,
                           "failures": proc.batch["failures"]}
        if proc.batch["failures"] > alerts.FLOOD_FAILURES and not proc.batch.get("flooded"):
            proc.batch["flooded"] = self.step_flood = True
        self.last_failure = {"seed": seed, "kind": kind, "signature": signature}
        self.log.warning("failure", seed=seed, kind=kind, signature=signature, signature_id=record["signature_id"],
                         new_signature=new, invariant=record["invariant"], message=record["message"],
                         exit_status=record["exit_status"], signal=record["signal"], record=layout.failure_key(seed),
                         replay=record["determinism"]["status"])
        return record

    def _write_record(self, record: dict) -> None:
        body = records.dumps(record)
        atomic_write(self.records_dir / f"{record['seed']}.json", body)
        self.outbox.put(layout.failure_key(record["seed"]), body)

    def _count(self, proc: SimProcess, seeds: int) -> None:
        """Seeds whose outcome is settled (passed, failed, crashed, timed out, skipped by the simulator): each is
        counted once, in the same loop turn that moves progress past it, so iterations == seeds below next_seed."""
        self.totals["iterations"] += seeds
        proc.batch["iterations"] += seeds

    def _record_gap(self, proc: SimProcess, first: int, last: int) -> None:
        count = last - first + 1
        self.totals["gaps"] += count
        self._count(proc, count)
        self.log.warning("gap", first_seed=first, last_seed=last, count=count, pid=proc.pid,
                         detail="the simulator printed no line for these seeds; recorded as nondeterministic")
        for seed in range(first, min(last, first + GAP_RECORDS_PER_GAP - 1) + 1):
            self._record(proc, seed, "nondeterministic", "gap: the simulator skipped this seed",
                         message="no iteration line for this seed (builds with --check-determinism skip seeds whose two runs disagree)",
                         determinism={"status": "skipped", "reason": "the simulator itself skipped this seed"})

    # -- processes that ended ---------------------------------------------------------------------------------

    def _reap(self) -> None:
        for proc in [p for p in self.procs if p.output_done]:
            proc.signal_group(signal.SIGKILL)  # anything it left behind; the zombie still holds the group id
            rc = proc.popen.wait()
            if proc.pidfd is not None:
                self.sel.unregister(proc.pidfd)
            proc.close()
            self.procs.remove(proc)
            if self.stop_reason and proc.kill_reason is None:
                proc.kill_reason = "stop"  # e.g. systemd's SIGTERM reached the simulators before the runner acted
            if proc.role == "replay":
                self._replay_done(proc, rc)
            elif self.s.protocol == "exit-code":
                self._seed_done(proc, rc)
            else:
                self._batch_done(proc, rc)
            if proc.role == "batch" and self.s.protocol == "vopr-json":
                self.spent.append(proc)  # read again after a kill -9 until a checkpoint holds what it said
            else:
                proc.remove_files()  # its outcome was its exit status: a restart runs it again

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for proc in self.procs:
            if proc.kill_reason is None and now - proc.last_progress > self.s.seed_timeout_s:
                self.log.warning("seed_timeout", pid=proc.pid, seed=self._in_flight(proc), seconds=round(now - proc.last_progress, 1))
                proc.kill("timeout")

    def _in_flight(self, proc: SimProcess) -> int:
        return proc.stream.expected if proc.stream is not None else proc.first_seed

    def _start_failed(self, why: str, proc: SimProcess | None) -> None:
        self.start_failures += 1
        delay = min(START_BACKOFF_MAX_S, 2.0 ** (self.start_failures - 1))
        self.start_backoff_until = time.monotonic() + delay
        tail = proc.tail_text(500).strip() if proc else ""
        self.log.error("error", where="simulator_start", error=why, stderr_tail=tail, attempt=self.start_failures,
                       retry_in_s=delay, fix="check --simulator-command, --workdir and that the simulator is built")
        self._alert(alerts.Alert("error", error=f"the simulator does not start: {why}" + (f" ({tail.splitlines()[-1]})" if tail else "")))

    def _abnormal(self, proc: SimProcess, rc: int, seed: int) -> str:
        """Handle a process that died at `seed` without finishing; returns how it ended."""
        sig = signal_name(rc)
        if proc.kill_reason == "timeout":
            self._record(proc, seed, "timeout", TIMEOUT_SIGNATURE,
                         exit_status=None, signal="SIGKILL", message=f"seed ran longer than {self.s.seed_timeout_s} s and was killed")
            return "timeout"
        if sig in EXTERNAL_KILL_SIGNALS:
            if self.sigkill_seeds.get(seed):
                self.sigkill_seeds.pop(seed)
                self._record(proc, seed, "crash", f"signal {sig}: killed twice at this seed (likely out of memory)",
                             exit_status=None, signal=sig, message=f"killed by {sig} twice in a row at this seed (likely out of memory)")
                return "killed_twice"
            self.sigkill_seeds[seed] = 1
            if len(self.sigkill_seeds) > 1000:
                self.sigkill_seeds.pop(next(iter(self.sigkill_seeds)))
            self.totals["infra_faults"] += 1
            self.state_dirty = True
            self.log.warning("infra_fault", seed=seed, signal=sig, pid=proc.pid,
                             detail="simulator killed from outside (likely out of memory); retrying the seed once")
            return "infra_fault"
        kind = self._failure_kind(rc)
        tail = proc.tail_text()
        self._record(proc, seed, kind, crash_signature(None if sig else rc, sig, tail), exit_status=None if sig else rc,
                     signal=sig, stderr_tail=tail,
                     message=first_meaningful_line(tail)[:500] if kind == "invariant" else None)
        return kind

    def _failure_kind(self, rc: int) -> str:
        """vopr-json reports failures on stdout, so any bad exit is a crash; exit-code simulators report failures
        by exit status (an `invariant`), except death by a signal or a Rust panic's 101 (a `crash`)."""
        return "crash" if rc < 0 or rc == 101 or self.s.protocol == "vopr-json" else "invariant"

    def _batch_done(self, proc: SimProcess, rc: int) -> None:
        seed = proc.stream.expected
        ending = "complete"
        if proc.kill_reason == "stop":
            ending = "stopped"
        elif not proc.got_start and proc.kill_reason != "timeout":
            ending = "start_failed"
            self._start_failed(f"exit status {rc} before its start line: {' '.join(proc.argv)}", proc)
        elif proc.complete is None and seed < proc.end_seed:
            ending = self._abnormal(proc, rc, seed)
            if ending != "infra_fault":  # a crash or timeout is the seed's result: it counts as run
                self._count(proc, 1)
                seed += 1
        elif seed < proc.end_seed:
            self._record_gap(proc, seed, proc.end_seed - 1)
            seed = proc.end_seed
        self.ledger.progress(proc.range_start, seed)
        self._batch_ended(proc, rc, ending, proc.first_seed, seed)

    def _seed_done(self, proc: SimProcess, rc: int) -> None:
        """exit-code protocol: one process per seed; the range continues in the same slot."""
        seed = proc.first_seed
        ending = "stopped" if proc.kill_reason == "stop" else "ok" if rc == 0 and proc.kill_reason is None else None
        if ending is None:
            ending = self._abnormal(proc, rc, seed)
        if ending not in ("stopped", "infra_fault"):
            self._count(proc, 1)
            self.ledger.progress(proc.range_start, seed + 1)
        next_seed = seed if ending == "infra_fault" else seed + 1
        if ending != "stopped" and next_seed < proc.end_seed and not self.stopping:
            nxt = self._spawn(self._seed_argv(next_seed, 1), "batch", proc.range_start, next_seed, proc.end_seed)
            if nxt is not None:
                nxt.batch = proc.batch
                return
        self._batch_ended(proc, rc, ending, proc.batch["first_seed"], next_seed)

    def _batch_ended(self, proc: SimProcess, rc: int, ending: str, first: int, next_seed: int) -> None:
        self.ledger.release(proc.range_start)
        self.batches_this_run += 1
        seconds = time.monotonic() - proc.batch["started"]
        done = proc.batch["iterations"]
        self.log.info("batch", first_seed=first, last_seed=next_seed - 1, seeds=done, failures=proc.batch["failures"],
                      seconds=round(seconds, 3), rate=round(done / seconds, 1) if seconds > 0 else None, exit_status=rc,
                      ending=ending, next_seed=self.ledger.next_seed, iterations_total=self.totals["iterations"])
        if ending == "complete" and self.s.process_target_s and self.s.protocol == "vopr-json":
            self._grow_batches(done, seconds, proc.out_bytes)
        self.state_dirty = self.store_wanted = True

    def _grow_batches(self, seeds: int, seconds: float, out_bytes: int) -> None:
        """Aim for --process-target-s per process (amortises start-up) within OUTPUT_BYTES_PER_PROCESS_MAX of
        output; at most 10x growth per step."""
        if seeds < self.batch_seeds // 2 or seconds <= 0:
            return
        wanted = int(seeds * self.s.process_target_s / max(seconds, 0.001))
        fits = int(OUTPUT_BYTES_PER_PROCESS_MAX * seeds / max(1, out_bytes))
        self.batch_seeds = max(self.s.batch_size, min(MAX_BATCH_SEEDS, self.batch_seeds * 10, wanted, fits))

    # -- determinism replays ----------------------------------------------------------------------------------

    def _replay_done(self, proc: SimProcess, rc: int) -> None:
        item = proc.replay_of
        seed = item["seed"]
        path = self.records_dir / f"{seed}.json"
        try:
            record = json.loads(path.read_bytes())
        except (OSError, ValueError):
            self.log.warning("replay_dropped", seed=seed, detail=f"local record {path} is missing or unreadable")
            self.pending_replays.remove(item)
            self.state_dirty = True
            return
        sig = signal_name(rc)
        if proc.kill_reason == "stop":
            return
        if self.s.protocol == "vopr-json" and not proc.got_start and proc.kill_reason != "timeout" and sig not in EXTERNAL_KILL_SIGNALS:
            self._start_failed(f"exit status {rc} before its start line (replay of seed {seed})", proc)
            return
        if proc.kill_reason == "timeout":
            outcome = ("timeout", TIMEOUT_SIGNATURE)
        elif proc.replay_failures:
            f = proc.replay_failures[0]
            outcome = ("invariant", invariant_signature(f.get("invariant"), f.get("message")))
        elif sig in EXTERNAL_KILL_SIGNALS and record.get("signal") != sig:
            item["attempts"] += 1
            if item["attempts"] < 2:
                self.log.warning("infra_fault", seed=seed, signal=sig, pid=proc.pid, detail="replay killed from outside; retrying once")
                return
            outcome = None
        elif sig in EXTERNAL_KILL_SIGNALS:
            outcome = ("crash", record["signature"])
        elif rc == 0 or (self.s.protocol == "vopr-json" and proc.stream.expected > seed):
            outcome = ("passed", None)
        else:
            outcome = (self._failure_kind(rc), crash_signature(None if sig else rc, sig, proc.tail_text()))
        self.pending_replays.remove(item)
        if outcome is None:
            record["determinism"] = {"status": "skipped", "reason": f"replay killed by {sig} twice", "replayed_at": utc_now()}
        else:
            reproduced = outcome[1] is not None and signature_id(outcome[1]) == record["signature_id"]
            record["determinism"] = {"status": "reproduced" if reproduced else "not_reproduced", "replayed_at": utc_now(),
                                     "replay_kind": outcome[0], "replay_signature_id": signature_id(outcome[1]) if outcome[1] else None,
                                     "replay_signature": outcome[1]}
            if not reproduced:
                record["kind"] = "nondeterministic"
                self.totals["nondeterministic"] += 1
        self._write_record(record)
        entry = self.index.get(record["signature_id"], {})
        first_bad = record["kind"] == "nondeterministic" and not entry.get("replays_not_reproduced")
        records.index_replay(self.index, record)
        self.index_dirty = self.state_dirty = self.store_wanted = True
        self.log.info("replay", seed=seed, status=record["determinism"]["status"], kind=record["kind"],
                      replay_kind=record["determinism"].get("replay_kind"), signature=record["signature"])
        if record["kind"] == "nondeterministic":
            self._alert(alerts.Alert("nondeterministic" if first_bad else "failure", records=[record]))

    # -- timed work -------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        if self.step_records:
            reason = "new_signature" if self.step_new else "flood" if self.step_flood else "failure"
            self._alert(alerts.Alert(reason, records=self.step_records, new_signatures=self.step_new, batch=self.step_batch))
            self.step_records, self.step_new, self.step_flood, self.step_batch = [], [], False, None
        if self.limiter.digest_due(time.time()):
            self._alert(alerts.Alert("digest"))
        if now - self.last_sample >= 1.0:
            for proc in self.procs:
                if proc.trim_stderr(STDERR_BYTES_MAX):
                    self.log.warning("stderr_trimmed", pid=proc.pid, bytes_max=STDERR_BYTES_MAX,
                                     detail="the simulator's stderr passed the limit: its file was emptied, its tail kept")
            self.rate_samples.append((now, self.totals["iterations"]))
            while self.rate_samples and now - self.rate_samples[0][0] > RATE_WINDOW_S:
                self.rate_samples.popleft()
            self.last_sample = now
            if now >= self.next_progress_sample:
                self.next_progress_sample = now + checkpoint.PROGRESS_SAMPLE_S
                self.progress_samples = checkpoint.add_progress_sample(self.progress_samples, utc_now(), self.totals["iterations"])
        if now - self.last_metrics >= METRICS_EVERY_S:
            self._flush_metrics()
        if self.state_dirty or now - self.last_sync >= STATE_SYNC_S:
            self._sync_state()
        elif self.totals["iterations"] != self.iterations_journaled:
            self.ledger.write_journal(self.totals["iterations"])
            self.iterations_journaled = self.totals["iterations"]
        if now - self.last_store >= STORE_CHECKPOINT_EVERY_S or (self.store_wanted and now - self.last_store >= STORE_CHECKPOINT_MIN_GAP_S):
            self._queue_store_checkpoint()
        if self.on_progress is not None and now - self.last_callback >= PROGRESS_CALLBACK_S:
            self.last_callback = now
            try:
                self.on_progress(self.snapshot())
            except Exception as exc:  # a display bug must not stop the loop
                self.log.warning("progress_callback_failed", error=f"{type(exc).__name__}: {exc}")
                self.on_progress = None

    def _alert(self, alert: alerts.Alert) -> None:
        now = time.time()
        self.state_dirty = True
        if not self.limiter.allows(alert, now):
            self.limiter.hold(alert, now)
            self.log.info("alert_held", reason=alert.reason, seeds=[r["seed"] for r in alert.records][-20:],
                          detail="rate limit: summarised in the next alert")
            return
        held = self.limiter.sent(alert, now)
        subject = alerts.subject(alert, self.s.deployment, held)
        ctx = {"deployment": self.s.deployment, "host": self.host, "now": now, "totals": self.totals,
               "next_seed": self.ledger.next_seed, "store_url": self.store.url}
        text = alerts.body(alert, held, ctx)
        if self.s.alert_topic:
            self.outbox.alert(subject, text)
            self.log.info("alert_queued", reason=alert.reason, subject=subject, topic=self.s.alert_topic)
        else:
            self.log.warning("alert", reason=alert.reason, subject=subject, body=text)

    def _flush_metrics(self) -> None:
        now_wall = time.time()
        base = self.metrics_base
        elapsed = max(1e-3, now_wall - base["time"])
        iterations = self.totals["iterations"] - base["iterations"]
        values = {"IterationsCompleted": (iterations, "Count"),
                  "FailuresDetected": (self.totals["failures"] - base["failures"], "Count"),
                  "NewFailureSignatures": (self.totals["signatures"] - base["signatures"], "Count"),
                  "SeedsPerSecond": (round(iterations / elapsed, 3), "Count/Second")}
        dims = [{"Name": layout.METRICS_DIMENSION, "Value": self.s.deployment}]
        if self.s.metrics == "cloudwatch":
            stamp = metric_timestamp(now_wall)
            self.outbox.metrics([{"MetricName": name, "Dimensions": dims, "Timestamp": stamp, "Value": float(v), "Unit": unit}
                                 for name, (v, unit) in values.items()])
        else:
            self.log.info("metrics", namespace=layout.METRICS_NAMESPACE, seconds=round(elapsed, 1),
                          **{name: v for name, (v, _unit) in values.items()})
        self.metrics_base = {"time": now_wall, **self.totals}
        self.last_metrics = time.monotonic()
        self.state_dirty = True

    def seeds_per_second(self) -> float:
        if len(self.rate_samples) < 2:
            return 0.0
        (t0, i0), (t1, i1) = self.rate_samples[0], self.rate_samples[-1]
        return round((i1 - i0) / (t1 - t0), 1) if t1 > t0 else 0.0

    def _checkpoint_doc(self, local: bool) -> dict:
        next_seed = self.ledger.next_seed
        doc = {
            "schema": layout.SCHEMA_VERSION, "deployment": self.s.deployment, "next_seed": next_seed,
            "last_completed_seed": next_seed - 1 if next_seed > 0 else None,
            "ranges_in_flight": self.ledger.ranges_in_flight(), "allocated_until": self.ledger.allocated_until,
            "totals": dict(self.totals), "seeds_per_second": self.seeds_per_second(), "progress": self.progress_samples,
            "simulator": self.simulator, "runner_version": runner.__version__, "host": self.host,
            "started_at": self.started_at, "updated_at": utc_now(), "pending_replays": len(self.pending_replays),
            "batch_seeds": self.batch_seeds, "workers": self.workers,
        }
        if local:
            doc["local"] = {"signature_index": self.index, "pending_replays": self.pending_replays,
                            "alert_limiter": self.limiter.to_json(), "metrics_base": self.metrics_base}
        else:  # what a new instance restoring from the store needs, consistent with the totals above
            doc["signature_index"] = self.index
            doc["pending_replay_seeds"] = [item["seed"] for item in self.pending_replays]
        return doc

    def _sync_state(self) -> None:
        atomic_write(self.state_dir / checkpoint.LOCAL_FILE, records.dumps(self._checkpoint_doc(local=True)))
        for proc in self.spent:
            proc.remove_files()
        self.spent.clear()
        self.ledger.truncate_journal()
        self.iterations_journaled = self.totals["iterations"]
        self.state_dirty = False
        self.last_sync = time.monotonic()

    def _queue_store_checkpoint(self) -> None:
        body = records.dumps(self._checkpoint_doc(local=False))
        self.outbox.put(layout.CHECKPOINT_LATEST, body)
        now = time.monotonic()
        if now - self.last_daily >= DAILY_COPY_EVERY_S or self.stopping:
            self.outbox.put(layout.daily_checkpoint_key(_today()), body)
            self.last_daily = now
        if self.index_dirty:
            self.outbox.put(layout.SIGNATURE_INDEX, records.dumps(records.index_document(self.s.deployment, self.index, utc_now())))
            self.index_dirty = False
        self.last_store = now
        self.store_wanted = False

    def snapshot(self) -> dict:
        return {"next_seed": self.ledger.next_seed, "iterations_total": self.totals["iterations"],
                "iterations_this_run": self.totals["iterations"] - self.iterations_at_start,
                "seeds_per_second": self.seeds_per_second(), "failures_total": self.totals["failures"],
                "signatures_total": self.totals["signatures"], "nondeterministic_total": self.totals["nondeterministic"],
                "batches_this_run": self.batches_this_run, "workers": self.workers, "last_failure": self.last_failure,
                "replays_pending": len(self.pending_replays), "outbox_pending": self.outbox.pending(),
                "elapsed_s": round(time.monotonic() - self.run_started, 1), "stopping": self.stopping,
                "store": self.store.url, "batch_seeds": self.batch_seeds}

    # -- shutdown ---------------------------------------------------------------------------------------------

    def _shutdown(self) -> int:
        began = time.monotonic()
        self.spot.stop()
        self._tick()
        self._flush_metrics()
        self._sync_state()
        self._queue_store_checkpoint()
        self.ledger.close()
        left = self.outbox.close(max(1.0, SHUTDOWN_FLUSH_S - (time.monotonic() - began)))
        never_started = self.start_failures > 0 and self.totals["iterations"] == self.iterations_at_start
        self.log.info("shutdown", reason=self.stop_reason or "done", next_seed=self.ledger.next_seed,
                      iterations_this_run=self.totals["iterations"] - self.iterations_at_start,
                      failures_total=self.totals["failures"], outbox_left=left, pending_replays=len(self.pending_replays),
                      exit_status=1 if never_started else 0,
                      detail="the simulator never started: exit 1" if never_started else
                      "outbox items left are delivered on the next start" if left else "everything delivered")
        if self.on_progress is not None:
            try:
                self.on_progress(self.snapshot())
            except Exception:
                pass
        return 1 if never_started else 0


def _today():
    import datetime as dt
    return dt.datetime.now(dt.timezone.utc).date()

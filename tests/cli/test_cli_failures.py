"""`vopr failures`, `vopr failures show SEED` (including a record archived in Glacier) and `vopr reproduce`,
on failure records the real runner wrote."""

from __future__ import annotations

import json
import shutil
import subprocess



def _record(runner_results, seed: int) -> dict:
    return json.loads((runner_results.store / "failures" / f"{seed}.json").read_text())


def test_failures_table_matches_the_signature_index(runner_results, workdir, invoke):
    result = invoke("failures", "--store", runner_results.store)
    assert result.exit_code == 0, result.output
    index = runner_results.index["signatures"]
    total = sum(e["count"] for e in index.values())
    assert f"{len(index)} signature(s), {total} failing seed(s)" in result.stdout
    lines = result.stdout.splitlines()
    for sig_id, entry in index.items():
        row = next(l for l in lines if sig_id in l)
        assert entry["signature"][:30] in row
        assert f" {entry['count']} " in row and str(entry["example_seeds"][0]) in row
        assert row.rstrip().endswith("yes")
    assert total == len(runner_results.seeds)


def test_failures_narrow_terminal_keeps_every_field(runner_results, workdir, invoke, monkeypatch):
    from vopr import display

    monkeypatch.setenv("COLUMNS", "80")
    display._consoles.clear()
    result = invoke("failures", "--store", runner_results.store)
    assert result.exit_code == 0
    for sig_id, entry in runner_results.index["signatures"].items():
        assert sig_id in result.stdout
        assert f"{entry['count']} x {entry['kind']}" in result.stdout
    assert "repro: yes" in result.stdout


def test_failures_json_and_signature_filter(runner_results, workdir, invoke):
    rows = json.loads(invoke("failures", "--store", runner_results.store, "--json").stdout)
    index = runner_results.index["signatures"]
    assert {r["signature_id"]: (r["count"], r["example_seeds"], r["reproducible"]) for r in rows} == {
        k: (v["count"], v["example_seeds"], v["reproducible"]) for k, v in index.items()
    }
    assert [r["last_seen"] for r in rows] == sorted((r["last_seen"] for r in rows), reverse=True)
    sig_id, entry = next((k, v) for k, v in index.items() if v["signature"].startswith("linearizability"))
    result = invoke("failures", "--store", runner_results.store, "--signature", "LINEARIZABILITY")
    assert result.exit_code == 0
    assert sig_id in result.stdout and "1 signature(s)" in result.stdout
    assert f"example seeds: {', '.join(map(str, entry['example_seeds']))}" in result.stdout
    by_prefix = json.loads(invoke("failures", "--store", runner_results.store, "--signature", sig_id[:6], "--json").stdout)
    assert [r["signature_id"] for r in by_prefix] == [sig_id]
    none = invoke("failures", "--store", runner_results.store, "--signature", "no-such-thing")
    assert none.exit_code == 0 and "no failure signatures matching 'no-such-thing'" in none.stdout


def test_failures_on_an_empty_store(tmp_path, workdir, invoke):
    (tmp_path / "empty").mkdir()
    result = invoke("failures", "--store", tmp_path / "empty")
    assert result.exit_code == 0
    assert "no failures recorded yet" in result.stdout
    assert json.loads(invoke("failures", "--store", tmp_path / "empty", "--json").stdout) == []


def test_failures_before_the_index_is_written_lists_the_records(runner_results, tmp_path, workdir, invoke):
    store = tmp_path / "early"
    shutil.copytree(runner_results.store / "failures", store / "failures")
    result = invoke("failures", "--store", store)
    assert result.exit_code == 0
    seeds = sorted(runner_results.seeds)
    assert f"{len(seeds)} failure record(s) in {store}" in result.stdout and "no signature index yet" in result.stdout
    assert str(seeds[0]) in result.stdout and f"vopr failures show SEED --store {store}" in result.stdout


def test_failures_hints_repeat_the_store_flag(runner_results, workdir, invoke):
    result = invoke("failures", "--store", runner_results.store)
    store = runner_results.store
    assert f"details: `vopr failures show SEED --store {store}`; reproduce: `vopr reproduce SEED --store {store}`" in result.stdout


def test_failures_show_renders_one_record(runner_results, workdir, invoke):
    seed = runner_results.seeds[0]
    record = _record(runner_results, seed)
    result = invoke("failures", "show", str(seed), "--store", runner_results.store)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"failure: seed {seed}" in out
    assert record["signature"] in out and record["signature_id"] in out
    assert "reproduced on replay" in out
    assert runner_results.repo.commit in out
    for command in record["reproduce"]["commands"]:
        assert command in out
    as_json = json.loads(invoke("failures", "show", str(seed), "--store", runner_results.store, "--json").stdout)
    assert as_json == record
    group_option = invoke("failures", "--store", runner_results.store, "show", str(seed), "--json")
    assert json.loads(group_option.stdout) == record


def test_failures_show_crash_includes_stderr(runner_results, workdir, invoke):
    crash = next(s for s in runner_results.seeds if _record(runner_results, s)["kind"] == "crash")
    result = invoke("failures", "show", str(crash), "--store", runner_results.store)
    assert "exit status  101" in result.stdout
    assert "panicked at" in result.stdout and "stderr (last lines)" in result.stdout


def test_failures_show_unknown_seed_is_one_line(runner_results, workdir, invoke):
    result = invoke("failures", "show", "7", "--store", runner_results.store)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no failure record for seed 7 in ") and result.stderr.count("\n") == 1
    bad = invoke("failures", "show", "seven", "--store", runner_results.store)
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_failures_show_archived_record_says_how_to_restore(runner_results, deployed, upload, invoke):
    upload(deployed.s3, deployed.bucket, runner_results.store)
    seed = runner_results.seeds[1]
    key = f"failures/{seed}.json"
    body = (runner_results.store / key).read_bytes()
    deployed.s3.put_object(Bucket=deployed.bucket, Key=key, Body=body, StorageClass="GLACIER")
    result = invoke("failures", "show", str(seed))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert f"failure record for seed {seed} is archived in GLACIER" in result.stderr
    assert f"vopr failures show {seed} --restore" in result.stderr
    assert f"aws s3api restore-object --bucket {deployed.bucket} --key {key}" in result.stderr
    other = runner_results.seeds[0]
    assert invoke("failures", "show", str(other)).exit_code == 0

    restore = invoke("failures", "show", str(seed), "--restore", "--tier", "Bulk", "--days", "3")
    assert restore.exit_code == 0, restore.output
    assert f"restore of seed {seed}'s record from GLACIER requested (Bulk, readable for 3 days)" in restore.stdout
    head = deployed.s3.head_object(Bucket=deployed.bucket, Key=key)
    assert "Restore" in head
    after = invoke("failures", "show", str(seed), "--json")
    assert after.exit_code == 0 and json.loads(after.stdout)["seed"] == seed
    again = invoke("failures", "show", str(seed), "--restore")
    assert "already restored" in again.stdout


def test_failures_restore_rejects_a_bad_tier(runner_results, deployed, upload, invoke):
    upload(deployed.s3, deployed.bucket, runner_results.store)
    result = invoke("failures", "show", str(runner_results.seeds[0]), "--restore", "--tier", "Fast")
    assert result.exit_code == 2 and "--tier 'Fast' is not a restore tier" in result.stderr


def test_reproduce_prints_the_records_commands(runner_results, workdir, invoke):
    seed = runner_results.seeds[0]
    record = _record(runner_results, seed)
    result = invoke("reproduce", str(seed), "--store", runner_results.store)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"# seed {seed}: invariant {record['invariant']}: {record['message']} (reproduced on replay)"
    assert lines[1:] == record["reproduce"]["commands"]
    assert lines[1] == f"git clone {runner_results.repo.path} vopr-repro"
    assert f"git checkout {runner_results.repo.commit}" in lines


def test_reproduce_printed_commands_really_reproduce(runner_results, tmp_path, workdir, invoke):
    seed = runner_results.seeds[0]
    script = invoke("reproduce", str(seed), "--store", runner_results.store).stdout
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    failed = [l["data"] for l in lines if l["type"] == "iteration" and l["data"]["status"] == "failed"]
    assert [f["seed"] for f in failed] == [seed]


def _clone(runner_results, dest):
    subprocess.run(["git", "clone", "-q", str(runner_results.repo.path), str(dest)], check=True)
    return dest


def test_reproduce_run_in_a_checkout(runner_results, tmp_path, workdir, invoke):
    checkout = _clone(runner_results, tmp_path / "checkout")
    seed = runner_results.seeds[0]
    result = invoke("reproduce", str(seed), "--store", runner_results.store, "--run", checkout)
    assert result.exit_code == 0, result.output
    assert f"$ git checkout {runner_results.repo.commit}" in result.stdout
    assert "$ chmod +x sim.sh" in result.stdout
    assert f"seed {seed} failed again (exit 1): reproduced" in result.stdout


def test_reproduce_run_reports_a_pass_as_not_reproduced(runner_results, tmp_path, workdir, invoke):
    store = tmp_path / "results"
    shutil.copytree(runner_results.store, store)
    seed = runner_results.seeds[0]
    path = store / "failures" / f"{seed}.json"
    record = json.loads(path.read_text())
    record["reproduce"]["commands"][-1] = record["reproduce"]["commands"][-1].replace(f"--seed {seed} ", "--seed 1 ")
    path.write_text(json.dumps(record))
    checkout = _clone(runner_results, tmp_path / "checkout")
    result = invoke("reproduce", str(seed), "--store", store, "--run", checkout)
    assert result.exit_code == 3
    assert f"seed {seed} passed (exit 0): NOT reproduced" in result.stdout


def test_reproduce_run_refuses_a_dirty_or_missing_checkout(runner_results, tmp_path, workdir, invoke):
    checkout = _clone(runner_results, tmp_path / "checkout")
    (checkout / "sim.sh").write_text("#!/bin/sh\nexit 0\n")
    seed = runner_results.seeds[0]
    result = invoke("reproduce", str(seed), "--store", runner_results.store, "--run", checkout)
    assert result.exit_code == 1 and "has uncommitted changes" in result.stderr
    (tmp_path / "plain").mkdir()
    result = invoke("reproduce", str(seed), "--store", runner_results.store, "--run", tmp_path / "plain")
    assert result.exit_code == 1 and "is not a git checkout" in result.stderr

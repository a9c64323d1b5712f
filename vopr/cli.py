"""The `vopr` command line (Typer + rich): thin commands over the modules in this package.

Expected failures (config, AWS, Terraform, store) print one `error:` line and exit non-zero; nothing heavy
(cdktf, boto3, rich) is imported until a command needs it, so `vopr --help` starts fast.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from typer.core import TyperGroup

from vopr import __version__


_UsageError = typer.BadParameter.__base__  # click's UsageError as typer vendors it (typer does not export it)


class _Group(TyperGroup):
    """Turns expected exceptions from any command into one line on stderr and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _UsageError as exc:  # a subcommand's bad arguments: one line, not click's boxed usage panel
            if type(exc).__name__ == "NoArgsIsHelpError" or exc.ctx is None:
                raise
            _error(f"{exc.format_message().rstrip('.')}: see `{exc.ctx.command_path} --help`")
            raise typer.Exit(2) from None
        except Exception as exc:
            from vopr.errors import one_line

            handled = one_line(exc)
            if handled is None:
                raise
            message, code = handled
            _error(message)
            raise typer.Exit(code) from None


def _error(message: str) -> None:
    from rich.markup import escape

    from vopr.display import console

    console(stderr=True).print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)


app = typer.Typer(
    cls=_Group,
    name="vopr",
    help="Keep a deterministic simulation tester running on a cheap AWS spot instance, and triage what it finds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_short=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
failures_app = typer.Typer(
    cls=_Group,
    invoke_without_command=True,
    help="The failure signatures found so far (a table), or one failure record (`vopr failures show SEED`).",
    pretty_exceptions_show_locals=False,
)
app.add_typer(failures_app, name="failures")

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="vopr.toml to read (default: $VOPR_CONFIG, else ./vopr.toml if present)", show_default=False),
]
SetOpt = Annotated[
    Optional[List[str]],
    typer.Option("--set", help="override a setting, e.g. --set instance.type=c7g.large (repeatable)", show_default=False),
]
ProfileOpt = Annotated[
    Optional[str], typer.Option("--profile", help="AWS profile (default: $AWS_PROFILE)", show_default=False)
]
RegionOpt = Annotated[
    Optional[str],
    typer.Option("--region", help="AWS region (default: the deployment's, else $AWS_REGION, else deployment.region)", show_default=False),
]
StoreOpt = Annotated[
    Optional[str],
    typer.Option("--store", help="read results from this directory or s3://bucket/prefix instead of the deployment's bucket", show_default=False),
]
EngineOpt = Annotated[
    Optional[str], typer.Option("--engine", help="terraform or tofu (default: $VOPR_ENGINE, else whichever is on PATH)", show_default=False)
]
OutOpt = Annotated[Path, typer.Option("--out", help="where the synthesized stack goes")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vopr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Keep a deterministic simulation tester running on a cheap AWS spot instance, and triage what it finds."""


def _config(config: Optional[Path], sets: Optional[List[str]], region: Optional[str] = None):
    from vopr.config import load, parse_overrides

    overrides = parse_overrides(list(sets or []))
    if region:
        overrides["deployment.region"] = region
    return load(config, overrides)


def _aws_for(dep, cfg, profile: Optional[str], region: Optional[str]):
    """Flag > the deployment's recorded region > $AWS_REGION/$AWS_DEFAULT_REGION > deployment.region."""
    from vopr.aws import Aws, env_region

    return Aws(profile=profile, region=region or (dep.region if dep else None) or env_region() or cfg.deployment.region)


def _deployed(config, sets, profile, region):
    from vopr import deployment

    cfg = _config(config, sets)
    dep = deployment.load(cfg.deployment.name)
    return cfg, dep, _aws_for(dep, cfg, profile, region)


def _out():
    from vopr.display import console

    return console()


def _note(text: str) -> None:
    from rich.markup import escape

    from vopr.display import console

    console(stderr=True).print(escape(text), soft_wrap=True)


def _results(config, sets, profile, region, store):
    """(results reader, deployment or None, aws or None, cfg) for --store or the deployment's bucket."""
    from vopr import deployment
    from vopr.results import open_results

    cfg = _config(config, sets)
    if store:
        aws = _aws_for(None, cfg, profile, region) if store.startswith("s3://") else None
        results = open_results(store, aws)
        results.flags = f" --store {shlex.quote(store)}"
        return results, None, aws, cfg
    dep = deployment.load(cfg.deployment.name)
    aws = _aws_for(dep, cfg, profile, region)
    return open_results(dep.store_url, aws), dep, aws, cfg


def _confirm(question: str) -> bool:
    return typer.confirm(question, default=False)


@app.command()
def synth(
    out: OutOpt = Path("cdktf.out"),
    config: ConfigOpt = None,
    sets: SetOpt = None,
) -> None:
    """Validate the config and synthesize the stack (cached when inputs are unchanged); show resources and monthly cost."""
    from rich.table import Table

    from vopr import stackops

    cfg = _config(config, sets)
    result = stackops.synthesize(cfg, out)
    console = _out()
    state = "unchanged inputs, reused" if result.cached else "synthesized"
    console.print(f"stack [bold]{result.stack_name}[/bold] ({cfg.deployment.region}): {state} {result.tf_json_path}", soft_wrap=True)
    console.print(f"[dim]inputs hash {result.input_hash[:12]}, config from {cfg.source}[/dim]", soft_wrap=True)
    table = Table(title="resources", title_justify="left")
    table.add_column("type")
    table.add_column("count", justify="right")
    counts = stackops.resource_counts(result)
    for rtype, n in counts.items():
        table.add_row(rtype, str(n))
    table.add_row("[bold]total[/bold]", f"[bold]{sum(counts.values())}[/bold]")
    console.print(table)
    _print_cost(cfg, console)


def _print_cost(cfg, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    from vopr import stackops

    est = stackops.monthly_cost(cfg)
    table = Table(title=f"estimated monthly cost (USD, {cfg.deployment.region})", title_justify="left")
    table.add_column("service")
    table.add_column("item")
    table.add_column("quantity", overflow="fold")
    table.add_column("per month", justify="right")
    for line in est.lines:
        usd = "n/a" if line.monthly_usd is None else f"${line.monthly_usd:.2f}"
        table.add_row(escape(line.service), escape(line.item), escape(line.quantity), usd)
    table.add_row("[bold]total[/bold]", "", "", f"[bold]${est.total_usd:.2f}[/bold]")
    console.print(table)
    console.print(f"with AWS's always-free tier unused elsewhere in the account: ${est.total_after_free_tier_usd:.2f}/month")
    for note in est.assumptions:
        console.print(f"[dim]- {escape(note)}[/dim]", soft_wrap=True)


@app.command()
def deploy(
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="apply without asking")] = False,
    replace_instance: Annotated[
        bool, typer.Option("--replace-instance", help="replace the instance even if nothing changed: re-clone and rebuild simulator.git_ref")
    ] = False,
    engine: EngineOpt = None,
    out: OutOpt = Path("cdktf.out"),
    config: ConfigOpt = None,
    sets: SetOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
) -> None:
    """Synthesize, then terraform/tofu init + plan + apply; save the outputs to .vopr/deployment-<name>.json."""
    from vopr import stackops, terraform
    from vopr.aws import Aws
    from vopr.config import check_for_deploy

    cfg = _config(config, sets, region)
    check_for_deploy(cfg)
    chosen = terraform.find_engine(engine)
    aws = Aws(profile=profile, region=cfg.deployment.region)
    console = _out()

    def step(text: str) -> None:
        console.print(f"[bold cyan]==>[/bold cyan] {text}")

    def echo(text: str) -> None:
        from rich.markup import escape

        console.print(f"    [dim]{escape(text)}[/dim]", soft_wrap=True)

    confirm = _confirm if sys.stdin.isatty() else None
    dep = stackops.deploy(cfg, aws, chosen, out, auto_approve, confirm=confirm, echo=echo, step=step,
                          replace_instance=replace_instance)
    console.print(f"[bold green]deployed[/bold green] {dep.deployment_name} in {dep.region}")
    for label, value in (
        ("instance", dep.instance_id), ("bucket", dep.bucket_name), ("log group", dep.log_group_name),
        ("alert topic", dep.topic_arn), ("dashboard", dep.dashboard_url),
    ):
        console.print(f"  {label:<12} {value}", soft_wrap=True)
    console.print(stackops.subscription_reminder(aws, dep, cfg.deployment.alert_email), soft_wrap=True)
    console.print(
        "next: the instance builds the simulator before the first checkpoint (35-70 minutes on a c7g.medium); "
        "watch with `vopr logs --follow --stream bootstrap`, then `vopr status`",
        soft_wrap=True,
    )


@app.command()
def status(
    json_out: Annotated[bool, typer.Option("--json", help="print the same data as one JSON object")] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
) -> None:
    """One screen: instance, progress, failures, checkpoint age, alarms, alert email, cost so far this month."""
    from vopr import display
    from vopr import status as status_mod

    results, dep, aws, cfg = _results(config, sets, profile, region, store)
    data = status_mod.collect(results, dep=dep, aws=aws if dep else None, cfg=cfg)
    if json_out:
        display.print_json(data)
    else:
        status_mod.render(data, _out())


@app.command()
def logs(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines until Ctrl-C")] = False,
    since: Annotated[str, typer.Option("--since", help="how far back to start: 30s, 15m, 1h, 2d")] = "1h",
    stream: Annotated[str, typer.Option("--stream", help="all, runner or bootstrap")] = "all",
    raw: Annotated[bool, typer.Option("--raw", help="print the log lines exactly as stored")] = False,
    poll_interval_s: Annotated[float, typer.Option("--poll-interval", help="seconds between polls with --follow", min=0.1)] = 5.0,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
) -> None:
    """The deployment's log group, newest last, JSON lines rendered readably; --follow polls until Ctrl-C."""
    from vopr import logs as logs_mod
    from vopr.errors import VoprError

    if stream not in logs_mod.STREAM_KINDS:
        raise VoprError(f"--stream {stream!r} is unknown: use all, runner or bootstrap", exit_code=2)
    window = logs_mod.parse_since(since)
    cfg, dep, aws = _deployed(config, sets, profile, region)
    client = aws.client("logs")
    group = dep.log_group_name
    console = _out()

    def emit(event) -> None:
        if raw:
            sys.stdout.write(event.message.rstrip("\n") + "\n")
            sys.stdout.flush()
        else:
            console.print(logs_mod.render(event), soft_wrap=True)

    start_ms = logs_mod.start_ms_for(window)
    try:
        if follow:
            for event in logs_mod.follow(client, group, start_ms, stream, poll_interval_s):
                emit(event)
            return
        events = logs_mod.fetch(client, group, start_ms, stream_kind=stream)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except Exception as exc:
        logs_mod.explain_missing_group(exc, group)
        raise
    for event in events:
        emit(event)
    if not events:
        _note(f"no log events in {group} in the last {since}: see 'No logs' under Troubleshooting in docs/VOPR_DEPLOYMENT.md")


@app.command()
def ssh(
    command: Annotated[Optional[str], typer.Option("--command", help="run this instead of an interactive shell")] = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
) -> None:
    """A shell on the instance through SSM Session Manager (needs the AWS CLI and the session-manager-plugin)."""
    from vopr import ssh as ssh_mod

    cfg, dep, aws = _deployed(config, sets, profile, region)
    ssh_mod.ssh(aws, dep, command)


@app.command()
def stop(
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="wait until the instance is stopped")] = True,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
) -> None:
    """Stop the instance (keeps its disk and the results) and silence the no-progress alarm while stopped."""
    from vopr import instance

    cfg, dep, aws = _deployed(config, sets, profile, region)
    instance.stop(aws, dep, wait=wait, echo=_out().print)


@app.command()
def start(
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="wait until the instance is running")] = True,
    retry_for_s: Annotated[
        int, typer.Option("--retry-for", help="seconds to keep retrying while EC2 refuses a just-stopped spot instance", min=0)
    ] = 300,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
) -> None:
    """Start the instance again, wait for it, and re-enable the no-progress alarm's actions."""
    from vopr import instance

    cfg, dep, aws = _deployed(config, sets, profile, region)
    instance.start(aws, dep, wait=wait, retry_window_s=retry_for_s, echo=_out().print)


@app.command()
def destroy(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    keep_bucket: Annotated[bool, typer.Option("--keep-bucket", help="keep the results bucket and its failure records")] = False,
    engine: EngineOpt = None,
    out: OutOpt = Path("cdktf.out"),
    config: ConfigOpt = None,
    sets: SetOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
) -> None:
    """Delete the deployment (optionally keeping the bucket), then check EC2 that nothing is left billing."""
    from rich.markup import escape

    from vopr import deployment, stackops, terraform
    from vopr.errors import VoprError

    cfg = _config(config, sets, region)
    dep = deployment.load(cfg.deployment.name, required=False)
    aws = _aws_for(dep, cfg, profile, region)
    chosen = terraform.find_engine(engine or (dep.engine if dep else None))
    console = _out()
    records = stackops.count_failure_records(aws, dep.bucket_name) if dep else None
    console.print(f"[bold]vopr destroy[/bold] deletes deployment [bold]{cfg.deployment.name}[/bold] in {aws.region}:")
    for line in stackops.destroy_targets(dep, cfg, keep_bucket, records):
        console.print(f"  - {escape(line)}", soft_wrap=True)
    if not yes:
        if not sys.stdin.isatty():
            raise VoprError("destroy needs confirmation and there is no terminal to ask: pass --yes")
        if not typer.confirm("Delete all of this?", default=False):
            raise VoprError("destroy cancelled: nothing was deleted")

    def step(text: str) -> None:
        console.print(f"[bold cyan]==>[/bold cyan] {escape(text)}")

    def echo(text: str) -> None:
        console.print(f"    [dim]{escape(text)}[/dim]", soft_wrap=True)

    report = stackops.destroy(cfg, aws, chosen, dep, out, keep_bucket, echo=echo, step=step)
    console.print(f"[bold green]destroyed[/bold green] {cfg.deployment.name}: no instance or spot request of it is left running")
    if report.get("bucket_kept"):
        console.print(f"kept s3://{report['bucket_kept']}: `vopr failures --store s3://{report['bucket_kept']}` still reads it", soft_wrap=True)


@failures_app.callback()
def failures(
    ctx: typer.Context,
    signature: Annotated[Optional[str], typer.Option("--signature", help="only signatures whose id starts with, or text contains, this")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the rows as JSON")] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
) -> None:
    """The signature index as a table: signature, count, first/last seen, example seed, reproducible?"""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"store": store, "config": config, "sets": sets, "profile": profile, "region": region}
        return
    from vopr import display
    from vopr import failures as failures_mod

    results, dep, aws, cfg = _results(config, sets, profile, region, store)
    index = results.signature_index()
    rows = failures_mod.signature_rows(index, signature)
    if json_out:
        display.print_json(rows)
        return
    console = _out()
    if index is None:
        seeds = results.failure_seeds()
        if not seeds:
            console.print(f"no failures recorded yet in {results.url} (no signature index)")
            return
        console.print(f"{len(seeds)} failure record(s) in {results.url} but no signature index yet (the runner writes "
                      f"it within a minute of a failure): seeds {', '.join(map(str, seeds[:20]))}"
                      f"{' ...' if len(seeds) > 20 else ''}; details: `vopr failures show SEED{results.flags}`", soft_wrap=True)
        return
    if not rows:
        what = f" matching {signature!r}" if signature else ""
        console.print(f"no failure signatures{what} in {results.url}")
        return
    total = sum(r["count"] for r in rows)
    failures_mod.render_signatures(rows, f"{len(rows)} signature(s), {total} failing seed(s) in {results.url}", console)
    if signature and len(rows) == 1:
        console.print(f"example seeds: {', '.join(map(str, rows[0]['example_seeds']))}")
    console.print(f"details: `vopr failures show SEED{results.flags}`; reproduce: `vopr reproduce SEED{results.flags}`",
                  soft_wrap=True)


@failures_app.command("show")
def failures_show(
    ctx: typer.Context,
    seed: Annotated[int, typer.Argument(help="the failing seed", min=0, metavar="SEED")],
    json_out: Annotated[bool, typer.Option("--json", help="print the record as stored")] = False,
    restore: Annotated[bool, typer.Option("--restore", help="request a readable copy of a record archived in Glacier")] = False,
    tier: Annotated[str, typer.Option("--tier", help="restore speed: Expedited, Standard or Bulk")] = "Standard",
    days: Annotated[int, typer.Option("--days", help="keep the restored copy this many days", min=1)] = 7,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
) -> None:
    """One failure record: kind, signature, message, determinism, commit, host, stderr tail and reproduction."""
    from vopr import display
    from vopr import failures as failures_mod

    parent = ctx.obj or {}
    results, dep, aws, cfg = _results(
        config or parent.get("config"), sets or parent.get("sets"), profile or parent.get("profile"),
        region or parent.get("region"), store or parent.get("store"),
    )
    if restore:
        _out().print(results.restore_record(seed, days=days, tier=tier), soft_wrap=True)
        return
    record = results.failure_record(seed)
    if json_out:
        display.print_json(record)
    else:
        failures_mod.render_record(record, _out())


@app.command()
def reproduce(
    seed: Annotated[int, typer.Argument(help="the failing seed", min=0, metavar="SEED")],
    run_in: Annotated[
        Optional[Path], typer.Option("--run", help="run the commands in this existing checkout of the simulator", show_default=False)
    ] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
) -> None:
    """Print the exact commands that reproduce SEED locally (checkout, build, run one seed); --run DIR runs them there."""
    from vopr import reproduce as repro

    results, dep, aws, cfg = _results(config, sets, profile, region, store)
    record = results.failure_record(seed)
    if run_in is None:
        sys.stdout.write(repro.header(record) + "\n" + "\n".join(repro.commands(record)) + "\n")
        return
    console = _out()
    code = repro.run(record, run_in, echo=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))
    raise typer.Exit(code)


@app.command()
def run(
    demo: Annotated[bool, typer.Option("--demo", help="run the bundled demo simulator (no Rust build needed)")] = False,
    store: Annotated[str, typer.Option("--store", help="results directory or s3://bucket/prefix")] = "vopr-results",
    max_seconds: Annotated[Optional[float], typer.Option("--max-seconds", help="stop after this many seconds", show_default=False)] = None,
    max_batches: Annotated[Optional[int], typer.Option("--max-batches", help="stop after this many simulator processes", show_default=False)] = None,
    workdir: Annotated[Optional[Path], typer.Option("--workdir", help="the simulator checkout (where simulator.command runs)", show_default=False)] = None,
    log_file: Annotated[Optional[Path], typer.Option("--log-file", help="where the runner's JSON log lines go", show_default=False)] = None,
    start_seed: Annotated[Optional[int], typer.Option("--start-seed", help="resume at this seed when no valid checkpoint exists", show_default=False)] = None,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    region: RegionOpt = None,
) -> None:
    """Run the runner in the foreground on this machine with a live progress display (Ctrl-C stops it cleanly)."""
    from vopr import live

    cfg = _config(config, sets)
    settings = live.settings_for(cfg, demo=demo, store=store, max_seconds=max_seconds, max_batches=max_batches,
                                 workdir=workdir, log_file=log_file, region=region, start_seed=start_seed)
    raise typer.Exit(live.run(settings, _out()))


def main() -> None:
    app(prog_name="vopr")


if __name__ == "__main__":
    main()

"""`vopr synth`, `deploy` and `destroy`: the only CLI paths that import cdktf (through `stacks.synth`).

deploy = synth (cached) + init + plan + confirm + apply + save the outputs; destroy = confirm + (empty or keep the
bucket) + terraform destroy + an EC2 sweep so no instance or spot request is left billing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from vopr import deployment, terraform
from vopr.errors import VoprError

DEFAULT_OUTDIR = Path("cdktf.out")
BUCKET_RESOURCE_PREFIX = "aws_s3_"
DELETE_BATCH = 1000
JSII_NODE_WARNING_ENV = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"
SUPPORTED_NODE_MAJOR = "20"


def synthesize(cfg, outdir: Path = DEFAULT_OUTDIR, state_path: str | None = None):
    """Validated config -> SynthResult (served from cache when the inputs are unchanged).

    The Terraform state goes to `state_path`, by default `terraform.vopr-<name>.tfstate` in the current directory."""
    from vopr.config import validate_config

    validate_config(cfg, require_email=True)
    os.environ.setdefault(JSII_NODE_WARNING_ENV, SUPPORTED_NODE_MAJOR)
    from stacks.synth import synthesize as _synthesize

    return _synthesize(cfg, Path(outdir), Path(state_path) if state_path else None)


def tf_json(result) -> dict:
    return json.loads(Path(result.tf_json_path).read_text())


def resource_counts(result) -> dict[str, int]:
    from stacks.synth import summarize

    return summarize(tf_json(result))


def monthly_cost(cfg):
    """The stack helper's per-resource monthly estimate for this config (vopr.cost.CostEstimate)."""
    from vopr import cost

    return cost.estimate(cfg)


def _runner(cfg, result, engine, aws, echo) -> terraform.Runner:
    log_path = deployment.deployment_dir() / f"terraform-{cfg.deployment.name}.log"
    return terraform.Runner(engine=engine, cwd=Path(result.stack_dir), env=aws.env(), log_path=log_path, echo=echo)


def instance_addresses(tf: dict) -> list[str]:
    return sorted(f"aws_instance.{name}" for name in (tf.get("resource") or {}).get("aws_instance", {}))


def deploy(cfg, aws, engine, outdir: Path = DEFAULT_OUTDIR, auto_approve: bool = False,
           confirm: Callable[[str], bool] | None = None, echo: Callable[[str], None] = print,
           step: Callable[[str], None] | None = None, replace_instance: bool = False) -> deployment.Deployment:
    """Synthesize, init, plan, (confirm,) apply, then save the outputs to the deployment file and return them.

    replace_instance forces a new instance (a fresh clone and build of simulator.git_ref) even if nothing changed."""
    step = step or echo
    step(f"synthesizing stack for deployment {cfg.deployment.name} ({cfg.deployment.region})")
    result = synthesize(cfg, outdir)
    echo(f"stack {result.stack_name}: {'unchanged inputs, reused' if result.cached else 'synthesized'} {result.tf_json_path}")
    tf = _runner(cfg, result, engine, aws, echo)
    step(f"{engine.name} init")
    tf.init()
    replace = instance_addresses(tf_json(result)) if replace_instance else []
    step(f"{engine.name} plan" + (" (replacing the instance)" if replace else ""))
    summary = tf.plan(replace)
    if summary.startswith("No changes"):
        echo("no changes: the deployment already matches the configuration")
    else:
        if not auto_approve:
            if confirm is None:
                raise VoprError("deploy needs confirmation and there is no terminal to ask: pass --auto-approve")
            if not confirm(f"{summary or 'apply the plan?'} Apply it?"):
                raise VoprError("deploy cancelled: nothing was changed")
        step(f"{engine.name} apply")
        tf.apply_plan()
    outputs = tf.outputs()
    dep = deployment.from_outputs(outputs, stack_dir=str(result.stack_dir), engine=engine.name,
                                  state_path=str(getattr(result, "state_path", "") or ""))
    path = deployment.save(dep)
    echo(f"saved the stack outputs to {path}; Terraform state is in {dep.state_path or 'the stack directory'} (keep it: destroy needs it)")
    return dep


def subscription_reminder(aws, dep, email: str) -> str:
    """What to tell the operator about the alert subscription right after a deploy."""
    from vopr.status import subscriptions_info

    info = subscriptions_info(aws.client("sns"), dep.topic_arn)
    if info["confirmed"]:
        return f"alert email {email or ''} is confirmed: alerts will be delivered".replace("  ", " ")
    return (
        f"ACTION NEEDED: AWS sent a confirmation email to {email or 'the alert address'} ('AWS Notification - "
        f"Subscription Confirmation'); click its link or no alert is delivered. `vopr status` shows when it is confirmed."
    )


def destroy_targets(dep, cfg, keep_bucket: bool, failure_records: int | None) -> list[str]:
    """Lines naming everything `vopr destroy` deletes (and keeps)."""
    name = cfg.deployment.name
    bucket = dep.bucket_name if dep else f"{cfg.deployment.bucket_prefix}-<account>-{cfg.deployment.region}"
    records = "" if failure_records is None else f" ({failure_records} failure record(s))"
    lines = [
        f"instance {dep.instance_id if dep else '(' + cfg.instance_name + ')'} and its spot request and root volume",
        f"log group {dep.log_group_name if dep else cfg.log_group} (all logs)",
        f"alert topic {dep.topic_arn if dep else cfg.topic_name} and its email subscription",
        f"alarms {cfg.no_progress_alarm_name}, {cfg.failures_alarm_name}, dashboard {cfg.dashboard_name}, metric filters",
        f"IAM role and instance profile {name}-vopr-instance, security group {name}-vopr",
    ]
    if keep_bucket:
        lines.append(f"KEPT: results bucket {bucket}{records} (read it later with `vopr failures --store s3://{bucket}`)")
    else:
        lines.append(f"results bucket {bucket} with ALL its contents{records}, checkpoints and every version (--keep-bucket keeps it)")
    return lines


def count_failure_records(aws, bucket: str) -> int | None:
    if not bucket:
        return None
    from vopr.aws import error_code

    s3 = aws.client("s3")
    try:
        total = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="failures/"):
            total += len(page.get("Contents", []))
        return total
    except Exception as exc:
        if error_code(exc) == "NoSuchBucket":
            return None
        raise


def empty_bucket(aws, bucket: str, echo: Callable[[str], None] = print) -> int:
    """Delete every object version and delete marker (the bucket is versioned and not force_destroy)."""
    from vopr.aws import error_code

    s3 = aws.client("s3")
    deleted = 0
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        batch: list[dict] = []
        for page in pages:
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                batch.append({"Key": item["Key"], "VersionId": item["VersionId"]})
                if len(batch) == DELETE_BATCH:
                    deleted += _delete(s3, bucket, batch)
                    batch = []
        if batch:
            deleted += _delete(s3, bucket, batch)
    except Exception as exc:
        if error_code(exc) == "NoSuchBucket":
            return 0
        raise
    echo(f"emptied bucket {bucket}: {deleted} object version(s) deleted")
    return deleted


def _delete(s3, bucket: str, objects: list[dict]) -> int:
    response = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    errors = response.get("Errors") or []
    if errors:
        first = errors[0]
        raise VoprError(f"could not delete {first.get('Key')} from {bucket} ({first.get('Code')}): check the bucket policy and retry `vopr destroy`")
    return len(objects)


def bucket_addresses(tf: dict) -> list[str]:
    """Terraform addresses of the bucket and its settings/objects (what --keep-bucket removes from the state)."""
    return sorted(
        f"{rtype}.{name}"
        for rtype, items in (tf.get("resource") or {}).items()
        if rtype.startswith(BUCKET_RESOURCE_PREFIX)
        for name in items
    )


def destroy(cfg, aws, engine, dep, outdir: Path = DEFAULT_OUTDIR, keep_bucket: bool = False,
            echo: Callable[[str], None] = print, step: Callable[[str], None] | None = None) -> dict:
    """Terraform destroy (keeping or emptying the bucket first), then sweep EC2; returns the sweep report."""
    from vopr import sweep

    step = step or echo
    name = cfg.deployment.name
    step(f"synthesizing stack for deployment {name} (needed by {engine.name} destroy)")
    result = synthesize(cfg, outdir, dep.state_path if dep and dep.state_path else None)
    tf = _runner(cfg, result, engine, aws, echo)
    step(f"{engine.name} init")
    tf.init()
    outputs = tf.outputs()
    bucket = str(outputs.get("bucket_name") or (dep.bucket_name if dep else ""))
    instance_id = str(outputs.get("instance_id") or (dep.instance_id if dep else ""))
    if keep_bucket:
        in_state = set(tf.state_list())
        addresses = [a for a in bucket_addresses(tf_json(result)) if a in in_state]
        if addresses:
            step(f"removing the bucket from the {engine.name} state so destroy keeps it")
            tf.state_rm(addresses)
    elif bucket:
        step(f"emptying bucket {bucket}")
        empty_bucket(aws, bucket, echo)
    step(f"{engine.name} destroy")
    tf.destroy()
    step("checking EC2 for anything of this deployment still running")
    report = sweep.sweep(aws.client("ec2"), name, instance_ids=(instance_id,), echo=echo)
    if report["still_open_spot_requests"] or report["still_live_instances"]:
        raise VoprError(
            f"after destroy, EC2 still shows spot requests {report['still_open_spot_requests']} / instances "
            f"{report['still_live_instances']} of {name}: cancel/terminate them in the EC2 console to stop billing"
        )
    deployment.remove(name)
    report["bucket_kept"] = bucket if keep_bucket else ""
    return report

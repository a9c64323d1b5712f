"""PATH shim for the bootstrap sandbox: one program linked under every command name the script calls.

Each call is appended to $SANDBOX/calls.jsonl (argv, cwd, user, relevant env) and then emulated against the
sandbox root $VOPR_BOOTSTRAP_ROOT; $SANDBOX_FAIL names a step to fail. git, env and python run for real.
`aws` talks to moto; for the no-progress alarm it also plays CloudWatch's evaluation: once vopr-runner.service is
active, the alarm turns OK after $SANDBOX_ALARM_OK_AFTER polls (default 1; "never": the runner counts no seeds).
$SANDBOX_CW_FAIL makes `aws cloudwatch` calls fail: "always", or a number of first calls. `sleep` returns at once.
"""

import json
import os
import shutil
import subprocess
import sys

SANDBOX = os.environ["SANDBOX"]
ROOT = os.environ["VOPR_BOOTSTRAP_ROOT"]
SHIM_DIR = os.path.dirname(os.path.abspath(__file__))
NAME = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]
FAIL = os.environ.get("SANDBOX_FAIL", "")
RECORDED_ENV = ("CARGO_BUILD_JOBS", "RUSTUP_HOME", "CARGO_HOME", "HOME", "PATH", "LANG", "TZ")


def record(name=NAME, args=ARGS, **extra):
    entry = {
        "cmd": name,
        "argv": list(args),
        "cwd": os.getcwd(),
        "user": os.environ.get("SANDBOX_USER", "root"),
        "env": {k: os.environ[k] for k in RECORDED_ENV if k in os.environ},
    }
    entry.update(extra)
    with open(os.path.join(SANDBOX, "calls.jsonl"), "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def real(cmd):
    """The real program for cmd, skipping this shim directory."""
    dirs = [d for d in os.environ.get("PATH", "").split(":") if d and os.path.abspath(d) != SHIM_DIR]
    found = shutil.which(cmd, path=":".join(dirs))
    if not found:
        sys.exit(f"sandbox: no real {cmd}")
    return found


def users():
    try:
        with open(os.path.join(ROOT, "etc/passwd")) as fh:
            return [line.split(":", 1)[0] for line in fh if line.strip()]
    except FileNotFoundError:
        return []


def state(name, default):
    path = os.path.join(SANDBOX, name + ".json")
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default


def save_state(name, value):
    with open(os.path.join(SANDBOX, name + ".json"), "w") as fh:
        json.dump(value, fh, indent=1, sort_keys=True)


def link_shim(path):
    """Install this shim at path; it then answers to path's basename."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.lexists(path):
        os.symlink(os.path.join(SHIM_DIR, "shim.py"), path)


def dnf():
    record()
    if FAIL == "packages":
        sys.exit("Error: Unable to find a match: amazon-cloudwatch-agent")
    if "amazon-cloudwatch-agent" in ARGS:
        link_shim(os.path.join(ROOT, "opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"))
    print("Complete!")


def curl():
    method, headers, out, url = "GET", [], None, None
    it = iter(ARGS)
    for arg in it:
        if arg in ("-X", "-H", "-o", "--retry", "--connect-timeout", "--proto"):
            value = next(it)
            if arg == "-X":
                method = value
            elif arg == "-H":
                headers.append(value)
            elif arg == "-o":
                out = value
        elif arg.startswith("http"):
            url = arg
    record(method=method, url=url, headers=headers)
    imds = state("imds", {})
    prefix = "http://169.254.169.254/latest/"
    if url and url.startswith(prefix):
        path = url[len(prefix):]
        if path == "api/token":
            if method != "PUT" or not any(h.startswith("X-aws-ec2-metadata-token-ttl-seconds:") for h in headers):
                sys.exit(22)
            sys.stdout.write(imds["token"])
            return
        if f"X-aws-ec2-metadata-token: {imds['token']}" not in headers:
            print("curl: (22) The requested URL returned error: 401", file=sys.stderr)
            sys.exit(22)
        answers = {"meta-data/instance-id": imds["instance-id"], "meta-data/placement/region": imds["region"]}
        answers.update({f"meta-data/tags/instance/{k}": v for k, v in imds.get("tags", {}).items()})
        if path not in answers:
            print("curl: (22) The requested URL returned error: 404", file=sys.stderr)
            sys.exit(22)
        sys.stdout.write(answers[path])
        return
    if url == "https://sh.rustup.rs" and out:
        with open(out, "w") as fh:
            fh.write(f'#!/bin/sh\nexec "{os.path.join(SHIM_DIR, "rustup-init")}" "$@"\n')
        return
    print(f"curl: (6) Could not resolve host: {url}", file=sys.stderr)
    sys.exit(6)


def rustup_init():
    record()
    toolchain = ARGS[ARGS.index("--default-toolchain") + 1]
    bindir = os.path.join(os.environ["CARGO_HOME"], "bin")
    for tool in ("rustup", "cargo", "rustc"):
        link_shim(os.path.join(bindir, tool))
    settings = os.path.join(os.environ["RUSTUP_HOME"], "settings.json")
    with open(settings, "w") as fh:
        json.dump({"default": toolchain, "toolchains": [toolchain]}, fh)
    print(f"info: default toolchain set to '{toolchain}'")


def _settings():
    path = os.path.join(os.environ["RUSTUP_HOME"], "settings.json")
    with open(path) as fh:
        return path, json.load(fh)


def _pinned_channel():
    if os.path.exists("rust-toolchain.toml"):
        import re

        with open("rust-toolchain.toml") as fh:
            return re.search(r'^channel\s*=\s*"([^"]+)"', fh.read(), re.M).group(1)
    return None


def _active():
    _, settings = _settings()
    pinned = _pinned_channel()
    if pinned:
        if pinned not in settings["toolchains"]:
            sys.exit(f"error: toolchain '{pinned}' is not installed")
        return pinned, f"overridden by '{os.path.abspath('rust-toolchain.toml')}'"
    return settings["default"], "default"


def rustup():
    record()
    if ARGS[:2] == ["toolchain", "install"]:
        path, settings = _settings()
        wanted = ARGS[2:] or [_pinned_channel()]
        settings["toolchains"] = sorted(set(settings["toolchains"]) | set(wanted))
        with open(path, "w") as fh:
            json.dump(settings, fh)
        print(f"info: installed {wanted}")
    elif ARGS == ["show", "active-toolchain"]:
        name, why = _active()
        print(f"{name}-aarch64-unknown-linux-gnu ({why})")
    else:
        sys.exit(f"sandbox rustup: unexpected {ARGS}")


def rustc():
    record()
    print(f"rustc {_active()[0]} (sandbox)")


FAKE_SIMULATOR = '''#!{python} -S
import json, os, sys
mode = os.environ.get("SANDBOX_SIM", "ok")
with open(os.path.join(os.environ["SANDBOX"], "calls.jsonl"), "a") as fh:
    fh.write(json.dumps({{"cmd": "simulator", "argv": sys.argv[1:], "cwd": os.getcwd(),
                         "user": os.environ.get("SANDBOX_USER", "root"), "env": {{}}}}) + "\\n")
if "--json" not in sys.argv:
    print("exit-code simulator, seed", sys.argv[-1])
    sys.exit(int(os.environ.get("SANDBOX_SIM_EXIT", "0")))
if mode == "garbage":
    print("thread 'main' started")
    sys.exit(0)
seed = int(sys.argv[sys.argv.index("--seed") + 1])
ts = "2026-11-30T09:14:02.118736402+00:00"
line = lambda kind, data: print(json.dumps({{"data": data, "timestamp": ts, "type": kind}}, sort_keys=True))
line("start", {{"checkpoint_loaded": False, "iterations": 1, "network_faults": True, "starting_seed": seed, "storage_faults": True}})
if mode == "fail":
    line("iteration", {{"events": 57, "invariant": "replica_consistency", "message": "Replica divergence at time 28113000",
                        "seed": seed, "status": "failed"}})
    line("batch_complete", {{"elapsed_secs": 0.01, "failed_seeds": [seed], "failures": 1, "rate": 100.0, "successes": 0}})
    sys.exit(1)
line("iteration", {{"events": 100, "seed": seed, "simulated_time_ms": 388.2, "status": "ok"}})
line("batch_complete", {{"elapsed_secs": 0.01, "failed_seeds": [], "failures": 0, "rate": 100.0, "successes": 1}})
'''


def _signal_the_bootstrap():
    """SIGTERM to the shell running the bootstrap's main (the nearest `bash SCRIPT` above), as a stop or shutdown does."""
    import signal

    pid = os.getppid()
    while pid > 1:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().decode().split("\0")
        if os.path.basename(argv[0]) == "bash" and len(argv) > 1 and argv[1] not in ("-c", ""):
            os.kill(pid, signal.SIGTERM)
            sys.exit(143)
        with open(f"/proc/{pid}/stat") as fh:
            pid = int(fh.read().rsplit(")", 1)[1].split()[1])
    sys.exit("sandbox cargo: no bootstrap shell above")


def cargo():
    record()
    if ARGS == ["--version"]:
        print(f"cargo {_active()[0]} (sandbox)")
        return
    if not ARGS or ARGS[0] != "build":
        sys.exit(f"sandbox cargo: unexpected {ARGS}")
    print("   Compiling kimberlite-sim v0.4.2 (/opt/vopr/src/crates/kimberlite-sim)")
    if FAIL == "build":
        print("error[E0425]: cannot find value `replica` in this scope", file=sys.stderr)
        print("error: could not compile `kimberlite-sim` (lib) due to 1 previous error", file=sys.stderr)
        sys.exit(101)
    if FAIL == "build-signal":
        _signal_the_bootstrap()
    if FAIL == "build-oom":
        vmstat = os.path.join(ROOT, "proc/vmstat")
        with open(vmstat) as fh:
            lines = fh.read().splitlines()
        lines = [f"oom_kill {int(v.split()[1]) + 1}" if v.startswith("oom_kill ") else v for v in lines]
        with open(vmstat, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        print("error: could not compile `kimberlite-vsr` (lib)\n\nCaused by:\n  process didn't exit successfully: "
              "`rustc --crate-name kimberlite_vsr` (signal: 9, SIGKILL: kill)", file=sys.stderr)
        sys.exit(101)
    binary = ARGS[ARGS.index("--bin") + 1] if "--bin" in ARGS else "vopr"
    target = os.path.join("target", "release", binary)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    content = FAKE_SIMULATOR.format(python=sys.executable)
    if not os.path.exists(target) or open(target).read() != content:
        with open(target, "w") as fh:
            fh.write(content)
        os.chmod(target, 0o755)
    print("    Finished `release` profile [optimized] target(s)")


def systemctl():
    record()
    units = state("systemd", {"enabled": [], "active": []})
    args = [a for a in ARGS if not a.startswith("--")]
    verb, names = args[0], args[1:]
    for name in names:
        vendor = name in ("logrotate.timer", "amazon-cloudwatch-agent.service")
        if verb in ("enable", "start", "restart") and not vendor:
            if not os.path.exists(os.path.join(ROOT, "etc/systemd/system", name)):
                sys.exit(f"Failed to {verb} unit: Unit file {name} does not exist.")
        if verb == "enable":
            units["enabled"] = sorted(set(units["enabled"]) | {name})
        if verb in ("start", "restart") or (verb == "enable" and "--now" in ARGS):
            units["active"] = sorted(set(units["active"]) | {name})
        if verb == "disable":
            units["enabled"] = [u for u in units["enabled"] if u != name]
        if verb == "stop" or (verb == "disable" and "--now" in ARGS):
            units["active"] = [u for u in units["active"] if u != name]
        if verb == "is-active" and name not in units["active"]:
            sys.exit(3)
    save_state("systemd", units)


def cloudwatch_agent_ctl():
    record()
    action = ARGS[ARGS.index("-a") + 1]
    if action == "fetch-config":
        source = ARGS[ARGS.index("-c") + 1]
        if not source.startswith("file:"):
            sys.exit("sandbox agent: -c must be file:PATH")
        with open(source[len("file:"):]) as fh:
            json.load(fh)
        if "-s" not in ARGS:
            return
    elif action != "start":
        sys.exit(f"sandbox agent: unexpected action {action}")
    units = state("systemd", {"enabled": [], "active": []})
    units["active"] = sorted(set(units["active"]) | {"amazon-cloudwatch-agent.service"})
    units["enabled"] = sorted(set(units["enabled"]) | {"amazon-cloudwatch-agent.service"})
    save_state("systemd", units)


def runuser():
    if ARGS[0] != "-u" or ARGS[2] != "--":
        sys.exit(f"sandbox runuser: unexpected {ARGS}")
    user = ARGS[1]
    record(args=ARGS[3:], as_user=user)
    if user not in users():
        sys.exit(f"runuser: user {user} does not exist")
    os.environ["SANDBOX_USER"] = user
    os.execvp(ARGS[3], ARGS[3:])


def useradd():
    record()
    name = ARGS[-1]
    with open(os.path.join(ROOT, "etc/passwd"), "a") as fh:
        fh.write(f"{name}:x:990:990::/var/lib/{name}:/sbin/nologin\n")


def id_():
    record()
    if ARGS[:1] == ["-u"] and ARGS[1] in users():
        print(990)
        return
    print(f"id: '{ARGS[-1]}': no such user", file=sys.stderr)
    sys.exit(1)


def chown():
    record()
    owner = ARGS[0].split(":")[0]
    if owner not in users():
        sys.exit(f"chown: invalid user: {ARGS[0]!r}")


def fallocate():
    record()
    with open(ARGS[-1], "w") as fh:
        fh.write("sandbox swap file\n")


def swapon():
    record()
    with open(os.path.join(ROOT, "proc/swaps"), "a") as fh:
        fh.write(f"{ARGS[-1]:<39} file\t\t4194300\t\t0\t\t-2\n")


def nproc():
    record()
    print(os.environ.get("SANDBOX_NPROC", "2"))


FAKE_PIP = '''import json, os, sys
argv = sys.argv[1:]
with open(os.path.join(os.environ["SANDBOX"], "calls.jsonl"), "a") as fh:
    fh.write(json.dumps({"cmd": "pip", "argv": argv, "cwd": os.getcwd(), "user": "root", "env": {}}) + "\\n")
pkg = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "boto3")
version = [a.split("==")[1] for a in argv if a.startswith("boto3==")][0]
os.makedirs(pkg, exist_ok=True)
with open(os.path.join(pkg, "__init__.py"), "w") as fh:
    fh.write("__version__ = %r\\n" % version)
'''


def python_versioned():
    if ARGS[:2] != ["-m", "venv"]:
        os.execv(sys.executable, [sys.executable] + ARGS)
    record()
    target = ARGS[2]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", target], check=True)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    pip = os.path.join(target, "lib", version, "site-packages", "pip")
    os.makedirs(pip)
    with open(os.path.join(pip, "__init__.py"), "w") as fh:
        fh.write("")
    with open(os.path.join(pip, "__main__.py"), "w") as fh:
        fh.write(FAKE_PIP)


def mkswap():
    record()


def git():
    record()
    os.execv(real("git"), ["git"] + ARGS)


def _cloudwatch_fails():
    """Whether this `aws cloudwatch` call fails, per $SANDBOX_CW_FAIL (counted across calls)."""
    mode = os.environ.get("SANDBOX_CW_FAIL", "")
    cw = state("cw", {"calls": 0, "polls": 0})
    cw["calls"] += 1
    save_state("cw", cw)
    return mode == "always" or (mode.isdigit() and cw["calls"] <= int(mode))


def _option(name):
    return ARGS[ARGS.index(name) + 1]


def cloudwatch(boto3):
    action = ARGS[1]
    client = boto3.client("cloudwatch", region_name=_option("--region"))
    if action in ("disable-alarm-actions", "enable-alarm-actions"):
        names = ARGS[ARGS.index("--alarm-names") + 1:ARGS.index("--region")]
        getattr(client, action.replace("-", "_"))(AlarmNames=names)
    elif action == "set-alarm-state":
        client.set_alarm_state(AlarmName=_option("--alarm-name"), StateValue=_option("--state-value"),
                               StateReason=_option("--state-reason"))
    elif action == "describe-alarms":
        name = _option("--alarm-names")
        ok_after = os.environ.get("SANDBOX_ALARM_OK_AFTER", "1")
        if "vopr-runner.service" in state("systemd", {"active": []})["active"]:
            cw = state("cw", {"calls": 0, "polls": 0})
            cw["polls"] += 1
            save_state("cw", cw)
            if ok_after != "never" and cw["polls"] > int(ok_after):
                client.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="sandbox: the runner's seeds arrived")
        alarms = client.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        if _option("--query") != "MetricAlarms[0].StateValue" or _option("--output") != "text":
            sys.exit(f"sandbox aws: unexpected {ARGS}")
        print(alarms[0]["StateValue"] if alarms else "None")
    else:
        sys.exit(f"sandbox aws: unexpected {ARGS}")


def aws():
    record()
    if ARGS[:1] == ["cloudwatch"] and _cloudwatch_fails():
        operation = "".join(w.capitalize() for w in ARGS[1].split("-"))
        sys.stderr.write(f"\nAn error occurred (AccessDenied) when calling the {operation} operation: User is not "
                         f"authorized to perform: cloudwatch:{operation}\n")
        sys.exit(254)
    import site

    site.main()
    import boto3

    if ARGS[:1] == ["cloudwatch"]:
        from botocore.exceptions import ClientError

        try:
            cloudwatch(boto3)
        except ClientError as exc:
            sys.stderr.write(f"\n{exc}\n")
            sys.exit(254)
    elif ARGS[:2] == ["s3", "cp"]:
        if FAIL == "s3":
            sys.exit("fatal error: An error occurred (404) when calling the HeadObject operation: Not Found")
        region = ARGS[ARGS.index("--region") + 1]
        src, dest = [a for a in ARGS[2:] if not a.startswith("--") and a != region]
        bucket, key = src[len("s3://"):].split("/", 1)
        try:
            boto3.client("s3", region_name=region).download_file(bucket, key, dest)
        except Exception as exc:  # noqa: BLE001 - the CLI prints the error and exits 1
            sys.exit(f"fatal error: {exc}")
    elif ARGS[:2] == ["sns", "publish"]:
        opts = {ARGS[i]: ARGS[i + 1] for i in range(2, len(ARGS) - 1) if ARGS[i].startswith("--")}
        response = boto3.client("sns", region_name=opts["--region"]).publish(
            TopicArn=opts["--topic-arn"], Subject=opts["--subject"], Message=opts["--message"]
        )
        print(json.dumps({"MessageId": response["MessageId"]}))
    else:
        sys.exit(f"sandbox aws: unexpected {ARGS}")


COMMANDS = {
    "dnf": dnf,
    "curl": curl,
    "rustup-init": rustup_init,
    "rustup": rustup,
    "rustc": rustc,
    "cargo": cargo,
    "systemctl": systemctl,
    "amazon-cloudwatch-agent-ctl": cloudwatch_agent_ctl,
    "runuser": runuser,
    "useradd": useradd,
    "id": id_,
    "chown": chown,
    "fallocate": fallocate,
    "mkswap": mkswap,
    "swapon": swapon,
    "nproc": nproc,
    "python3.11": python_versioned,
    "git": git,
    "aws": aws,
    "sleep": record,
}

if __name__ == "__main__":
    COMMANDS[NAME]()

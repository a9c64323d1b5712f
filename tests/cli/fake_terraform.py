"""A stand-in for `terraform` / `tofu` in CLI tests: records each call and plays back canned results.

Environment: FAKE_TF_LOG (JSON lines of argv/cwd/env appended here), FAKE_TF_FAIL (a subcommand to fail, e.g. `apply`),
FAKE_TF_OUTPUTS (JSON file printed by `output -json`), FAKE_TF_STATE (file of addresses for `state list` / `state rm`).
"""

import json
import os
import sys
from pathlib import Path

ENV_KEYS = ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "TF_IN_AUTOMATION", "TF_INPUT")


def main() -> int:
    args = sys.argv[1:]
    sub = next((a for a in args if not a.startswith("-")), "")
    if sub == "state" and len(args) > 1:
        sub = f"state {args[1]}"
    with open(os.environ["FAKE_TF_LOG"], "a") as log:
        log.write(json.dumps({"engine": os.environ.get("FAKE_TF_ENGINE", Path(sys.argv[0]).name), "argv": args, "cwd": os.getcwd(),
                              "env": {k: os.environ.get(k) for k in ENV_KEYS}}) + "\n")
    if sub and sub == os.environ.get("FAKE_TF_FAIL"):
        print(f"\u2502 Error: {sub} failed on purpose: AccessDenied for ec2:RunInstances", file=sys.stdout)
        print("\u2502   with aws_instance.compute_instance_1A2B,", file=sys.stdout)
        return 1
    state_file = os.environ.get("FAKE_TF_STATE")
    if sub == "init":
        print("Initializing the backend...")
        print("Terraform has been successfully initialized!")
    elif sub == "plan":
        out = next(a.split("=", 1)[1] for a in args if a.startswith("-out="))
        Path(out).write_text("plan")
        print("  # aws_instance.compute_instance_1A2B will be created")
        print("Plan: 21 to add, 0 to change, 0 to destroy.")
    elif sub == "apply":
        print("aws_instance.compute_instance_1A2B: Creating...")
        print("aws_instance.compute_instance_1A2B: Creation complete after 12s [id=i-0]")
        print("Apply complete! Resources: 21 added, 0 changed, 0 destroyed.")
    elif sub == "destroy":
        print("aws_instance.compute_instance_1A2B: Destroying... [id=i-0]")
        print("Destroy complete! Resources: 21 destroyed.")
    elif sub == "output":
        path = os.environ.get("FAKE_TF_OUTPUTS")
        outputs = json.loads(Path(path).read_text()) if path and Path(path).exists() else {}
        print(json.dumps({k: {"value": v, "type": "string", "sensitive": False} for k, v in outputs.items()}))
    elif sub == "state list":
        if state_file and Path(state_file).exists():
            print(Path(state_file).read_text(), end="")
    elif sub == "state rm":
        remove = set(args[2:])
        lines = Path(state_file).read_text().splitlines() if state_file and Path(state_file).exists() else []
        Path(state_file).write_text("".join(l + "\n" for l in lines if l not in remove))
        for a in sorted(remove):
            print(f"Removed {a}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The cdktf app: `cdktf synth` / `cdktf deploy` run this to write the vopr-<name> stack into $CDKTF_OUTDIR.

It loads vopr.toml (or $VOPR_CONFIG) like the CLI does and shares its cached synth (stacks.synth).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from stacks.synth import synthesize
from vopr.config import ConfigError, load


def main() -> int:
    try:
        cfg = load()
        result = synthesize(cfg, Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out")))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = "unchanged inputs, reused" if result.cached else "synthesized"
    print(f"{result.stack_name}: {state} {result.tf_json_path} (inputs {result.input_hash[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run by the session `synth` fixture (tests/conftest.py) in one subprocess: main.py as cdktf runs it, then a re-synth with one input changed.

Both synths share this process's single import of the AWS provider (the expensive part).
Usage: synth_driver.py MAIN_PY CHANGED_CONFIG CHANGED_OUTDIR; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import sys
from pathlib import Path


def main() -> None:
    main_py, changed_config, changed_outdir = map(Path, sys.argv[1:4])
    sys.argv = [str(main_py)]
    try:
        runpy.run_path(str(main_py), run_name="__main__")
        main_exit = 0
    except SystemExit as exc:
        main_exit = exc.code
    from stacks.synth import synthesize
    from vopr.config import load

    shutil.copytree(os.environ["CDKTF_OUTDIR"], changed_outdir)
    result = synthesize(load(changed_config), changed_outdir)
    print(
        json.dumps(
            {
                "main_exit": main_exit,
                "changed": {"cached": result.cached, "input_hash": result.input_hash, "tf_json": str(result.tf_json_path)},
            }
        )
    )


if __name__ == "__main__":
    main()

"""Environments for the subprocesses tests start: the developer's shell settings for vopr and cdktf removed."""

from __future__ import annotations

import os


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without any VOPR_* or CDKTF_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOPR_", "CDKTF_"))}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env.update(extra)
    return env

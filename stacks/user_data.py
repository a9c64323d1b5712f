"""Render scripts/user_data.sh.j2, the instance's first-boot script, from the validated config.

Every value reaches the script shell-quoted; the result must fit EC2's 16 KB user_data limit.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import jinja2

from vopr.config import Config, ConfigError

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "scripts" / "user_data.sh.j2"
USER_DATA_LIMIT_BYTES = 16 * 1024


class UserDataTooLarge(ConfigError):
    """The rendered script would not fit in EC2 user_data."""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_PATH.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = lambda value: shlex.quote(str(value))
    return env


def render_user_data(cfg: Config, runner_artifact_key: str) -> str:
    """The first-boot script for this config; raises UserDataTooLarge if it exceeds 16 KB."""
    script = _environment().get_template(TEMPLATE_PATH.name).render(
        cfg=cfg,
        deployment=cfg.deployment,
        instance=cfg.instance,
        simulator=cfg.simulator,
        runner=cfg.runner,
        log_group=cfg.log_group,
        runner_artifact_key=runner_artifact_key,
    )
    size = len(script.encode())
    if size > USER_DATA_LIMIT_BYTES:
        raise UserDataTooLarge(
            f"the rendered user_data is {size} bytes, over EC2's {USER_DATA_LIMIT_BYTES}-byte limit: shorten simulator.build_command/command or the template"
        )
    return script

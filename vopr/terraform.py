"""Run Terraform or OpenTofu on the synthesized stack: engine selection, streamed progress, one-line failures.

Every run's full output is appended to `.vopr/terraform-<name>.log`; the terminal gets the lines that show progress.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from vopr.errors import VoprError

ENGINES = ("terraform", "tofu")
ENGINE_ENV = "VOPR_ENGINE"
INSTALL_HINT = (
    "install Terraform (https://developer.hashicorp.com/terraform/install) or OpenTofu "
    "(https://opentofu.org/docs/intro/install/) and make sure it is on PATH"
)
PLAN_FILE = "vopr.tfplan"
_AUTOMATION_ENV = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_PROGRESS_RE = re.compile(
    r"(: (Creating|Modifying|Destroying|Reading|Creation complete|Modifications complete|Destruction complete|Still \w+)"
    r"|^(Plan|Apply complete|Destroy complete|Changes to Outputs|No changes)|^\s*# \S+ (will|must) be"
    r"|^(Error|Warning|│ Error|│ Warning)|Terraform has been successfully initialized|OpenTofu has been successfully initialized)"
)


@dataclass(frozen=True)
class Engine:
    name: str
    path: str


def find_engine(preferred: str | None = None, which: Callable[[str], str | None] = shutil.which) -> Engine:
    """The engine to use: --engine, else $VOPR_ENGINE, else terraform, else tofu; one-line error with the install hint."""
    preferred = preferred or os.environ.get(ENGINE_ENV) or None
    if preferred:
        if preferred not in ENGINES:
            raise VoprError(f"engine {preferred!r} is not supported: use terraform or tofu (--engine / ${ENGINE_ENV})")
        path = which(preferred)
        if not path:
            raise VoprError(f"`{preferred}` is not on PATH: {INSTALL_HINT}, or choose the other engine with --engine")
        return Engine(preferred, path)
    for name in ENGINES:
        path = which(name)
        if path:
            return Engine(name, path)
    raise VoprError(f"neither terraform nor tofu is on PATH: {INSTALL_HINT}")


@dataclass
class Runner:
    """Runs one engine in one stack directory, logging to log_path and echoing progress lines."""

    engine: Engine
    cwd: Path
    env: dict
    log_path: Path
    echo: Callable[[str], None] = print

    def run(self, args: Iterable[str], show: Callable[[str], bool] | None = None, capture: bool = False) -> str:
        """Run `<engine> args...`; returns stdout when capture; raises VoprError with the first error line on failure."""
        argv = [self.engine.path, *args]
        env = {**self.env, **_AUTOMATION_ENV}
        words = [a for a in args if not a.startswith("-")]
        label = " ".join([self.engine.name] + words[: 2 if words[:1] == ["state"] else 1])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        show = show or (lambda line: bool(_PROGRESS_RE.search(line)))
        captured: list[str] = []
        errors: list[str] = []
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"\n$ {' '.join([self.engine.name, *args])}  (in {self.cwd})\n")
            try:
                proc = subprocess.Popen(
                    argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT if not capture else subprocess.PIPE, text=True, bufsize=1,
                )
            except OSError as exc:
                raise VoprError(f"cannot run {self.engine.path}: {exc.strerror}; {INSTALL_HINT}") from None
            if capture:
                out, err = proc.communicate()
                log.write(out)
                log.write(err)
                captured.append(out)
                errors += [_ANSI_RE.sub("", l) for l in err.splitlines()]
            else:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = _ANSI_RE.sub("", raw.rstrip("\n"))
                    log.write(line + "\n")
                    errors.append(line)
                    if show(line):
                        self.echo(line)
            code = proc.wait()
        if code != 0:
            raise VoprError(
                f"{label} failed (exit {code}): {first_error(errors)}; full output in {self.log_path}"
            )
        return "".join(captured)

    def init(self) -> None:
        self.run(["init", "-input=false", "-no-color"])

    def plan(self, replace: list[str] | tuple = ()) -> str:
        """Plan into PLAN_FILE (forcing replacement of `replace` addresses); returns the `Plan:` summary line."""
        args = ["plan", "-input=false", "-no-color", *[f"-replace={a}" for a in replace], f"-out={PLAN_FILE}"]
        lines: list[str] = []

        def keep(line: str) -> bool:
            lines.append(line)
            return bool(re.match(r"^\s*# \S+ (will|must) be|^(Plan:|No changes)", line))

        self.run(args, show=keep)
        return next((l for l in reversed(lines) if l.startswith(("Plan:", "No changes"))), "")

    def apply_plan(self) -> None:
        self.run(["apply", "-input=false", "-no-color", "-auto-approve", PLAN_FILE])

    def destroy(self) -> None:
        self.run(["destroy", "-input=false", "-no-color", "-auto-approve"])

    def outputs(self) -> dict:
        raw = self.run(["output", "-json", "-no-color"], capture=True)
        try:
            data = json.loads(raw or "{}")
        except ValueError:
            raise VoprError(f"`{self.engine.name} output -json` did not print JSON; full output in {self.log_path}") from None
        return {k: (v.get("value") if isinstance(v, dict) else v) for k, v in data.items()}

    def state_list(self) -> list[str]:
        raw = self.run(["state", "list"], capture=True)
        return [l.strip() for l in raw.splitlines() if l.strip()]

    def state_rm(self, addresses: list[str]) -> None:
        if addresses:
            self.run(["state", "rm", *addresses])


def first_error(lines: list[str]) -> str:
    """The most telling line of a failed run: the first `Error:` line (with its detail), else the last line."""
    cleaned = [l.strip().lstrip("│╷╵").strip() for l in lines]
    cleaned = [l for l in cleaned if l]
    for i, line in enumerate(cleaned):
        if line.startswith("Error:"):
            detail = next((c for c in cleaned[i + 1:i + 4] if not c.startswith(("with ", "on "))), "")
            return f"{line} {detail}".strip() if detail and len(line) < 60 else line
    return cleaned[-1] if cleaned else "no output"

"""`python -m runner`: parse the settings (flags and environment variables), then run the loop.

A bad setting or an unusable checkpoint prints one line and exits 2 before any simulator runs.
"""

from __future__ import annotations

import sys

from runner.settings import SettingsError, parse


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse(argv)
        from runner.service import run

        return run(settings)
    except SettingsError as exc:
        print(f"vopr runner: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # logged as an error line already; systemd restarts the runner
        print(f"vopr runner: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""``python -m harness.proxy``: run the fault proxy in the foreground (what ``drill proxy`` runs).

Flags follow the Toxiproxy server's: ``-host``, ``-port``, ``-config`` (double dashes work too),
plus ``--allow-remote`` to listen off loopback.
"""

from __future__ import annotations

import argparse
import sys

from harness.errors import DrillsError
from harness.proxy.server import serve

__all__ = ["main", "serve"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # accept Toxiproxy's single-dash long flags
    argv = ["-" + a if a.startswith("-") and not a.startswith("--") and len(a) > 2 else a for a in argv]
    parser = argparse.ArgumentParser(prog="python -m harness.proxy", description="Toxiproxy-compatible fault proxy")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8474)
    parser.add_argument("--config", default=None, help="JSON file with a /populate array loaded at start")
    parser.add_argument("--allow-remote", action="store_true", help="allow listening off 127.0.0.0/8")
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, args.config, allow_remote=args.allow_remote)
    except DrillsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

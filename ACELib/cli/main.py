"""`ace` entry point. Every module ``ACELib/cli/cmd_*.py`` is a subcommand: it defines ``NAME``,
``HELP`` and ``add_arguments(parser)`` plus ``run(args) -> int``; this file only dispatches."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback

import ACELib
import ACELib.cli as cli_pkg


def _commands():
    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            yield importlib.import_module(f"ACELib.cli.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ace",
        description="Joint brain anatomy + lesion segmentation from partially labelled datasets (ACE loss).",
    )
    parser.add_argument("--version", action="version", version=f"ACELib {ACELib.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure reaches the user as one sentence; --debug adds the traceback
        if args.debug:
            traceback.print_exc()
        print(f"ace {args.command}: error: {describe_error(exc)}", file=sys.stderr)
        return 2


def describe_error(exc: BaseException) -> str:
    """One message for a failure: what went wrong, naming the file or option where the error does."""
    text = str(exc).strip()
    if isinstance(exc, KeyError):
        text = f"missing entry {text}"
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        target = f"{exc.filename!r}" + (f" -> {exc.filename2!r}" if exc.filename2 else "")
        text = f"{target}: {exc.strerror}"
    elif isinstance(exc, EOFError):
        text = f"a file ended early (truncated or damaged): {text or 'unexpected end of file'}"
    elif isinstance(exc, MemoryError):
        text = "out of memory" + (f": {text}" if text else "") + "; use smaller inputs, a smaller window or network"
    if not text:
        text = type(exc).__name__
    if not isinstance(exc, (ValueError, OSError, EOFError, KeyError, MemoryError, FloatingPointError, ImportError)):
        text = f"{text} ({type(exc).__name__}; run with --debug for the traceback)"
    return text


if __name__ == "__main__":
    sys.exit(main())

"""The ``trm`` command line: one subcommand per workflow stage.

Every Snakemake rule calls one subcommand with explicit paths, so each stage also runs
without Snakemake. Subcommands live next to the code they drive, in ``commands`` modules
that each define ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from trm import __version__
from trm.errors import TrmError

#: Modules whose ``register(subparsers)`` adds subcommands, in workflow order.
COMMAND_MODULES: tuple[str, ...] = (
    "trm.io.commands",
    "trm.search.commands",
    "trm.synth.commands",
    "trm.train.commands",
    "trm.train.finetune_commands",
    "trm.denovo.commands",
    "trm.denovo.evaluate_commands",
    "trm.casanovo.commands",
    "trm.compare.commands",
)

log = logging.getLogger("trm")


def build_parser() -> argparse.ArgumentParser:
    """The ``trm`` argument parser with every stage's subcommand."""
    parser = argparse.ArgumentParser(
        prog="trm",
        description="De novo peptide sequencing with a tiny recursive model.",
    )
    parser.add_argument("--version", action="version", version=f"trm {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="verbosity of the log written to stderr (default: INFO)",
    )
    parser.add_argument(
        "--attempts-log",
        type=Path,
        help="also append the log, with a header per run, to this file: a scheduler's "
        "retry replaces the job's own log, this one keeps every attempt (and the traceback "
        "of a failed one)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit status.

    A subcommand sets ``func`` on its parser (``set_defaults(func=...)``) taking the parsed
    arguments. Expected failures (bad input files, invalid settings) raise a
    :class:`trm.errors.TrmError` (or an :class:`OSError` for a missing or unreadable file);
    they are logged as one line naming the file and the process exits with status 1.
    Anything else is a bug: it propagates with its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(
        level=getattr(logging, args.log_level), format=log_format, stream=sys.stderr
    )
    attempts = None
    if args.attempts_log is not None:
        args.attempts_log.parent.mkdir(parents=True, exist_ok=True)
        attempts = logging.FileHandler(args.attempts_log, encoding="utf-8")
        attempts.setFormatter(logging.Formatter(log_format))
        root = logging.getLogger()
        root.addHandler(attempts)
        root.setLevel(min(root.level, getattr(logging, args.log_level)))
        job = os.environ.get("SLURM_JOB_ID")
        log.info(
            "==== trm %s: new attempt (pid %d%s) ====",
            args.command, os.getpid(), f", SLURM job {job}" if job else "",
        )  # fmt: skip
    try:
        args.func(args)
    except (TrmError, OSError) as error:
        log.error("%s", error)
        if args.log_level == "DEBUG":
            log.exception("traceback")
        return 1
    except BaseException:
        if attempts is not None:  # a bug or a kill: its traceback goes to stderr as well
            attempts.handle(
                log.makeRecord(
                    log.name, logging.CRITICAL, __file__, 0, "failed", (), sys.exc_info()
                )
            )
        raise
    finally:
        if attempts is not None:
            logging.getLogger().removeHandler(attempts)
            attempts.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

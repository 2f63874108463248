"""The command line's one entry: the verb table, and the one place where the provisioner's errors become output and
exit codes.

Each verb's module, provisioner.commands.VERB, adds its own options (`arguments(parser)`) and runs it (`main(args,
started)`). Only the verb given is imported: the others would bring the machine, the actions, requests..., and
`jupyter-init --help` stays as fast as Python itself allows.
"""

from __future__ import annotations

import errno
import importlib
import os
import select
import sys
import time
from collections.abc import Sequence

from provisioner import __version__, frontdoor, output
from provisioner.errors import ConfigError, ProvisionError
from provisioner.exits import VERBS, ExitCode
from provisioner.output import PROG, log

# Each verb's line in `jupyter-init --help`, in the order of exits.VERBS.
SUMMARIES = {
    "run": "bring up a Jupyter server and report to the platform",
    "resume": "continue the recorded run from where it stopped",
    "state": "show what the recorded run did; the exit code says its status",
    "stop": "stop the recorded server and its kernels",
    "graph": "draw the state machine (mermaid or Graphviz dot)",
    "check": "validate a states.toml without running it",
    "boot": "bring the server back after a reboot (root; its unit runs it at every boot)",
}


def build_parser(verb: str | None = None) -> frontdoor.Parser:
    """The parser, with the options of `verb` only (the one the command line gives)."""
    parser = frontdoor.Parser(
        prog=PROG,
        description="Bring up a Jupyter server on a VM at boot and tell the platform how it went. A verb comes first; "
        "no verb, or an option first, means `run`. The old call `jupyter-init TOKEN START_URL COMPLETE_URL` still "
        "runs, in exactly that shape.",
        epilog=f"`{PROG} VERB --help` lists a verb's options and exit codes.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="VERB", parser_class=frontdoor.Parser, required=True)
    for name in VERBS:
        sub = subparsers.add_parser(name, help=SUMMARIES[name])
        if name == verb:
            module = importlib.import_module(f"provisioner.commands.{name}")
            sub.epilog_from = frontdoor.epilog(name)
            module.arguments(sub)
            sub.set_defaults(main=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`jupyter-init` (and its second name, `provisioner`): the one entry point."""
    started = time.monotonic()
    output.redact.clear()  # each command redacts its own secrets (main runs more than once in one test process)
    output.setup()
    try:
        words = frontdoor.with_verb(sys.argv[1:] if argv is None else argv)
        args = frontdoor.parse(build_parser(words[0]), words)
        if getattr(args, "json_log", False):
            output.setup(json_log=True)
        code: int = args.main(args, started)
        if sys.stdout is not None:  # None: started with stdout closed (`>&-`), and print() wrote nowhere
            sys.stdout.flush()  # here, not at exit: a reader that went away is a line and a code, not a traceback
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        _drop_stdout()
        return ExitCode.PIPE
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise
        # Only the output can meet these here (the record's and the files' own are failures of the run): a full
        # disk or a broken device behind stdout, `jupyter-init state > /dev/full`.
        _drop_stdout()
        output.error(f"cannot write the output: {exc.strerror}")
        return ExitCode.OUTPUT
    except ConfigError as exc:
        _say_invalid(exc)
        return exc.exit_code
    except ProvisionError as exc:
        output.error(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run turns it into Interrupted)
        output.error("interrupted")
        return ExitCode.INTERRUPTED_BY_CTRL_C


def _say_invalid(exc: ConfigError) -> None:
    """One line for a file that cannot be read or parsed at all; else a line, then one per problem."""
    if len(exc.problems) == 1 and not exc.problems[0].path:
        output.error(f"{exc.source}: {exc.problems[0].message}")
        return
    output.error(f"{exc.source} is not a valid definition:")
    for problem in exc.problems:
        log.error("%s", problem, extra={"event": "problem"})


def _stdout_closed() -> bool:
    """Whether stdout is a pipe its reader has closed (and not some other pipe of ours that broke)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def _drop_stdout() -> None:
    """stdout cannot be written (its reader closed it, its disk is full): let nothing retry the write at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)

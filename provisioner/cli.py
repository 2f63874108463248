"""Command-line wiring. main() is the one place where the provisioner's errors become output and exit codes."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import re
import select
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from provisioner import __version__, exits, output
from provisioner.errors import TOKEN_MIN, ConfigError, ProvisionError, UsageError
from provisioner.exits import VERBS, ExitCode
from provisioner.output import PROG, log

if TYPE_CHECKING:
    from provisioner.settings import Secret

# The verbs' modules (commands, and through it the machine, the actions, requests...) are imported when a verb runs,
# not at start-up: `jupyter-init --help` stays as fast as Python itself allows.
TOKEN_ENV = "JUPYTER_TOKEN"  # noqa: S105 - the variable's name; settings.TOKEN_ENV, without importing settings
CALLBACKS_FILE_ENV = "PROVISIONER_CALLBACKS_FILE"
SIGNING_KEY_FILE_ENV = "PROVISIONER_SIGNING_KEY_FILE"
HELP_WORDS = ("-h", "--help", "--version")
# Words a newcomer types for a verb that no spelling distance finds (`start` is nearer to state than to run).
SYNONYMS = {
    "start": "run",
    "up": "run",
    "status": "state",
    "kill": "stop",
    "validate": "check",
    "draw": "graph",
    "version": "--version",
}
TYPO_MAX = 8  # a word this long or longer is never shown back, even when it looks like a verb mistyped
HELP = "help"  # `jupyter-init help [VERB]`, as git and pip take it: the help, never a verb or a token


def _epilog(verb: str) -> Callable[[], str]:
    def made() -> str:
        reasons: dict[str, int] = {}
        if verb in ("run", "resume", "boot"):
            from provisioner.commands.common import load_definition

            reasons = dict(load_definition(None).reasons)
        return exits.epilog(verb, reasons)

    return made


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting, and takes options only by their whole
    names: `--token SECRET` must be an unknown option, not an abbreviation of `--token-file` that reads a file named
    after the secret."""

    # The epilog, made only when help is shown: the exit codes come from the definition and the code, which
    # `jupyter-init --version` and every command that is not asking for help should not have to load.
    epilog_from: Callable[[], str] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        if self.epilog_from is not None:
            self.epilog = self.epilog_from()
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        message = re.sub(
            r"(unrecognized arguments:)(.*)", lambda match: f"{match[1]} {_options_only(match[2])}", message
        )
        raise UsageError(f"{message} (see {self.prog} --help)")


PIECE_MIN = 4  # a part of a long word shorter than this says nothing of it, and would be found in any message
OPTION_NAME = re.compile(r"--[a-z][a-z0-9-]*|-[a-zA-Z]")  # the shape of our options' names: never a token's


def _options_only(words: str) -> str:
    """What argparse did not recognise, as far as it can be shown: option names, not values."""
    named = [word for word in words.split() if OPTION_NAME.fullmatch(word)]
    hidden = len(words.split()) - len(named)
    others = f"{hidden} {'other ' if named else ''}word(s)" if hidden else ""
    return " and ".join(part for part in (" ".join(named), others) if part)


def _parse(words: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args(words)
    except UsageError as exc:
        # A mistyped command line may hold the token in the wrong place, and argparse quotes what it could not take
        # in ways of its own ('x', "x", --option=x, -hx): no word long enough to be a token is shown back.
        message = exc.message
        if words[:1] and words[0] in VERBS:  # the words the top parser found left over are the verb's
            message = message.replace(f"(see {PROG} --help)", f"(see {PROG} {words[0]} --help)")
        for piece in sorted(_long_pieces(words), key=len, reverse=True):
            for form in {piece, repr(piece)[1:-1]}:
                message = message.replace(form, "(a value hidden)")
        raise UsageError(message) from None


def _long_pieces(words: list[str]) -> set[str]:
    """Each word of the command line, what follows an `=` in it and what follows a short option's letter, when it is
    long enough to be a token and is not an option's name."""
    pieces = set()
    for word in words:
        if len(word) < TOKEN_MIN or OPTION_NAME.fullmatch(word):
            continue
        for piece in (word, word.partition("=")[2], word[2:] if word[:1] == "-" and word[1:2] != "-" else ""):
            if len(piece) >= PIECE_MIN:
                pieces.add(piece)
    return pieces


def _add_run(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="bring up a Jupyter server and report to the platform",
        description="Bring up a Jupyter Notebook server and report how it went to the platform's callback URLs.",
    )
    parser.epilog_from = _epilog("run")
    add_run_arguments(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from provisioner.settings import OPTIONS, help_text

    parser.add_argument(
        "token",
        nargs="?",
        metavar="TOKEN",
        help="the old call's three words, TOKEN START_URL COMPLETE_URL, all or none (better: --token-file or "
        "$JUPYTER_TOKEN, and the URLs as options)",
    )
    parser.add_argument("start_url", nargs="?", metavar="START_URL", help="POSTed status=init_started, or a failure")
    parser.add_argument(
        "complete_url", nargs="?", metavar="COMPLETE_URL", help="POSTed status=init_completed or a failure"
    )
    parser.add_argument("--start-url", dest="start_url_option", metavar="URL", help="START_URL as an option")
    parser.add_argument("--complete-url", dest="complete_url_option", metavar="URL", help="COMPLETE_URL as an option")
    parser.add_argument("--progress-url", metavar="URL", help="POSTed status=<state> at every transition")
    parser.add_argument(
        "--callbacks-file",
        type=Path,
        metavar="PATH",
        help=f"the callback URLs from this file (TOML: start_url, complete_url, progress_url), out of ps; or "
        f"${CALLBACKS_FILE_ENV}",
    )
    parser.add_argument("--token-file", type=Path, metavar="PATH", help="read the token from this file")
    parser.add_argument(
        "--signing-key-file",
        type=Path,
        metavar="PATH",
        help=f"sign callbacks with the platform's key in this file instead of the token; or ${SIGNING_KEY_FILE_ENV}",
    )
    # Every setting is an option of the same name, its help and default from settings.OPTIONS.
    for name, option in OPTIONS.items():
        if option.flag:
            # --no-NAME too: the command line beats a definition or an environment that turned it on.
            action = argparse.BooleanOptionalAction
            parser.add_argument("--" + name.replace("_", "-"), action=action, help=help_text(name))
        else:
            parser.add_argument("--" + name.replace("_", "-"), metavar=option.metavar, help=help_text(name))
    parser.add_argument(
        "--states", type=Path, metavar="FILE", help="state machine definition (default: the shipped one)"
    )
    parser.add_argument("--json-log", action="store_true", help="one JSON object per event on stderr, for machines")
    parser.set_defaults(func=_run)


def _add_output_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", metavar="DIR", help="the run's directory (default ~/.jupyter)")


def _add_resume(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "resume",
        help="continue the recorded run from where it stopped",
        description="Continue the run recorded in the output directory: re-run the state that failed or was "
        "interrupted, skip the ones that completed, deliver the callbacks that were not. Needs no token.",
    )
    parser.epilog_from = _epilog("resume")
    _add_output_dir(parser)
    parser.add_argument("--states", type=Path, metavar="FILE", help="definition (default: the recorded run's)")
    parser.add_argument(
        "--launcher",
        choices=("process", "systemd"),
        help="instead of the recorded one; as root for an account, a systemd unit is started only when given here",
    )
    parser.set_defaults(func=_resume)


def _resume(args: argparse.Namespace, started: float) -> int:
    from provisioner.commands import common, resume

    return resume.resume(common.output_dir(args.output_dir, None), args.states, started, args.launcher)


def _add_state(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "state",
        help="show what the recorded run did; the exit code says its status",
        description="Show the recorded run: its status, state, history, server and callbacks. The token is never "
        "shown.",
    )
    parser.epilog_from = _epilog("state")
    _add_output_dir(parser)
    parser.add_argument("--json", action="store_true", help="the same as JSON, for scripts")
    parser.set_defaults(func=_state)


def _state(args: argparse.Namespace, started: float) -> int:
    from provisioner.commands import common, state

    return state.state(common.output_dir(args.output_dir, None), args.json)


def _add_stop(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stop",
        help="stop the recorded server and its kernels",
        description="Stop the recorded server: SIGTERM to its process group (its kernels too), SIGKILL after the "
        "grace time; wait until its port is free, and record it. The record keeps everything else, so that "
        "`resume` can start the server again.",
    )
    parser.epilog_from = _epilog("stop")
    _add_output_dir(parser)
    parser.add_argument("--grace", type=_grace, default=10.0, metavar="S", help="seconds before SIGKILL (default 10)")
    parser.set_defaults(func=_stop)


def _grace(text: str) -> float:
    """--grace: seconds, from 0 to an hour (argparse's float would take nan, inf and -1)."""
    import math

    from provisioner.settings import ascii_text

    try:
        seconds = float(ascii_text(text))
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return seconds


def _stop(args: argparse.Namespace, started: float) -> int:
    from provisioner.commands import common, stop

    return stop.stop(common.output_dir(args.output_dir, None), args.grace)


def _add_graph(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="draw the state machine (mermaid or Graphviz dot)",
        description="Draw the state machine of a definition, every state and transition, on stdout. No state is "
        "marked unless --current asks for the recorded run's.",
    )
    parser.add_argument(
        "--format",
        choices=("mermaid", "dot"),
        default="mermaid",
        help="mermaid (default: GitHub and GitLab draw it in Markdown) or dot (Graphviz)",
    )
    parser.add_argument("--current", action="store_true", help="mark the state the recorded run is in")
    parser.epilog_from = _epilog("graph")
    parser.add_argument("--states", type=Path, metavar="FILE", help="definition to draw (default: the shipped one)")
    _add_output_dir(parser)
    parser.set_defaults(func=_graph)


def _graph(args: argparse.Namespace, started: float) -> int:
    from provisioner.commands import common, graph, state
    from provisioner.record import STOPPED_STATE

    definition = common.load_definition(args.states)
    current = None
    if args.current:
        out = common.output_dir(args.output_dir, args.states)
        common.act_as_owner(out)
        current = state.describe(out).get("state")
        current = None if current == STOPPED_STATE else current  # stopped: no state of the machine is current
    print(graph.graph(definition, args.format, current), end="")
    return 0


def _add_check(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate a states.toml without running it",
        description="Validate a definition whole, as `run` does before it starts, and list every problem, one per "
        "line, with where it is. Only the file is judged, not this machine (whether a [settings] user or "
        "directory exists is for the run).",
    )
    parser.epilog_from = _epilog("check")
    parser.add_argument("--states", type=Path, metavar="FILE", help="definition to check (default: the shipped one)")
    parser.set_defaults(func=_check)


def _check(args: argparse.Namespace, started: float) -> int:
    from provisioner.commands import check

    return check.check(args.states)


def _add_boot(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "boot",
        help="bring the server back after a reboot (root; its unit runs it at every boot)",
        description="Run, as root, the settings a `run --launcher systemd --user NAME` kept for NAME's server: "
        "once per boot, with callbacks that carry `boot` and `boot_id`; nothing when this boot was reported "
        "already or `stop` stopped the server. jupyter-init-boot@NAME.service runs it at every boot.",
    )
    parser.epilog_from = _epilog("boot")
    parser.add_argument("--user", required=True, metavar="NAME", help="the account whose server comes back")
    parser.set_defaults(func=_boot)


def _boot(args: argparse.Namespace, started: float) -> int:
    from provisioner.commands import boot

    return boot.boot(args.user, started)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Bring up a Jupyter server on a VM at boot and tell the platform how it went. A verb comes first; "
        "no verb, or an option first, means `run`. The old call `jupyter-init TOKEN START_URL COMPLETE_URL` still "
        "runs, in exactly that shape.",
        epilog=f"`{PROG} VERB --help` lists a verb's options and exit codes.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="VERB", parser_class=_Parser, required=True)
    _add_run(subparsers)
    _add_resume(subparsers)
    _add_state(subparsers)
    _add_stop(subparsers)
    _add_graph(subparsers)
    _add_check(subparsers)
    _add_boot(subparsers)
    return parser


def _one_of(name: str, *given: str | None) -> str | None:
    values = [value for value in given if value is not None]
    if len(values) > 1:
        raise UsageError(f"{name} is given more than once (the old call's words, an option, --callbacks-file)")
    return values[0] if values else None


def _token(args: argparse.Namespace) -> Secret | None:
    """The token from the argument, the token file or $JUPYTER_TOKEN, in that order; then out of our environment."""
    from provisioner.settings import Secret

    from_env = os.environ.pop(TOKEN_ENV, None)
    if args.token is not None:
        return Secret(args.token)
    if args.token_file is not None:
        from provisioner import inputs

        return inputs.token_file(args.token_file)
    return Secret(from_env) if from_env is not None else None


def _callback_urls(args: argparse.Namespace) -> dict[str, str | None]:
    """The callback URLs from the old call's words, the options or a callbacks file: each from one of them."""
    from_file: dict[str, str] = {}
    path = args.callbacks_file or os.environ.get(CALLBACKS_FILE_ENV) or None
    if path is not None:
        from provisioner import inputs

        from_file = inputs.callbacks_file(Path(path), "--callbacks-file" if args.callbacks_file else CALLBACKS_FILE_ENV)
    return {
        "start_url": _one_of("START_URL", args.start_url, args.start_url_option, from_file.get("start_url")),
        "complete_url": _one_of(
            "COMPLETE_URL", args.complete_url, args.complete_url_option, from_file.get("complete_url")
        ),
        "progress_url": _one_of("PROGRESS_URL", args.progress_url, from_file.get("progress_url")),
    }


def _run(args: argparse.Namespace, started: float) -> int:
    from provisioner.commands import common, run
    from provisioner.record import url_secrets
    from provisioner.settings import OPTIONS, Secret, resolve

    _check_old_call(args)
    token = _token(args)
    output.redact.add(token)  # before anything can echo a value: a mistyped option may hold the token
    definition = common.load_definition(args.states)
    # Every layered setting has an option of the same name.
    cli = {name: getattr(args, name) for name in OPTIONS} | _callback_urls(args)
    settings = resolve(cli, os.environ, definition.settings, token)
    key_file = args.signing_key_file or os.environ.get(SIGNING_KEY_FILE_ENV) or None
    if key_file is not None:
        from provisioner import signing

        option = "--signing-key-file" if args.signing_key_file else SIGNING_KEY_FILE_ENV
        settings = dataclasses.replace(settings, signing_key=signing.read_key(Path(key_file), option))
    for url in settings.urls().values():  # a password or a key in a callback URL is masked wherever it would show
        for secret in url_secrets(url):
            output.redact.add(Secret(secret))
    if args.token:
        log.warning("warning: a token on the command line is visible in ps; use --token-file or $%s", TOKEN_ENV)
    return run.run(settings, definition, started)


def _with_verb(argv: Sequence[str]) -> list[str]:
    """The command line with its verb first. No verb, or an option first, is `run`; so is the old call, in exactly its
    shape. Any other first word is a usage error: a word is never taken as the token by accident."""
    words = list(argv)
    if words[:1] == [HELP]:
        return [verb for verb in words[1:2] if verb in VERBS] + ["--help"]
    if words and (words[0] in VERBS or words[0] in HELP_WORDS):
        return words
    if not words or words[0].startswith("-") or _is_old_call(words):
        return ["run", *words]
    raise UsageError(_not_a_verb(words[0]))


def _is_old_call(words: Sequence[str]) -> bool:
    """`TOKEN START_URL COMPLETE_URL`, the old script's arguments, options only after them."""
    if len(words) < 3 or (len(words) > 3 and not words[3].startswith("-")):
        return False
    return _old_call_shape(*words[:3])


def _old_call_shape(token: str | None, start: str | None, complete: str | None) -> bool:
    """The old call's three words: a token, then two URL slots, each an http(s) URL or empty (the old script's way
    of saying "no callback": `jupyter_init.sh TOKEN "" URL`)."""
    return token is not None and _is_url_slot(start) and _is_url_slot(complete)


def _is_url_slot(word: str | None) -> bool:
    """A callback URL as settings judges one, or empty."""
    from provisioner.settings import BadValue, parse_url

    try:
        return word is not None and (word == "" or parse_url(word) is not None)
    except BadValue:
        return False


def _check_old_call(args: argparse.Namespace) -> None:
    """`run`'s words are the old call's three or none: `jupyter-init --port 9000 stop` is not a token named stop."""
    words = [word for word in (args.token, args.start_url, args.complete_url) if word is not None]
    if words and not _old_call_shape(args.token, args.start_url, args.complete_url):
        raise UsageError(_not_a_verb(words[0], after_run=True))


def _not_a_verb(word: str, after_run: bool = False) -> str:
    """Why `word` is refused, and the verb it may be a typo of. The word itself is shown only when it is such a typo,
    and short: any other may be a token typed where it does not belong."""
    import difflib

    close = (
        [SYNONYMS[word.lower()]] if word.lower() in SYNONYMS else difflib.get_close_matches(word.lower(), VERBS, n=1)
    )
    shown = close and len(word) < TYPO_MAX
    if after_run:
        verb = f" ({PROG} {close[0]})" if close else ""
        return (
            f"run was given {f'the word {word!r}' if shown else 'a word it cannot take'}: its only words are the old "
            f"call's TOKEN START_URL COMPLETE_URL, all three, or none; a verb comes first{verb} (see {PROG} --help)"
        )
    hint = f"{word!r} is not a verb: did you mean {close[0]}?" if shown else "the first word is not a verb:"
    return f"{hint} the verbs are {', '.join(VERBS)} (see {PROG} --help)"


def main(argv: Sequence[str] | None = None) -> int:
    """`jupyter-init` (and its second name, `provisioner`): the one entry point."""
    started = time.monotonic()
    output.redact.clear()  # each command redacts its own secrets (main runs more than once in one test process)
    output.setup()
    try:
        args = _parse(_with_verb(sys.argv[1:] if argv is None else argv))
        if getattr(args, "json_log", False):
            output.setup(json_log=True)
        code: int = args.func(args, started)
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

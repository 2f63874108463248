"""The front door: which verb a command line asks for, what argparse may say back about it, and the old call's shape.

A mistyped command line may hold the token anywhere: nothing here shows back a word long enough to be one.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from provisioner import exits
from provisioner.errors import TOKEN_MIN, UsageError
from provisioner.exits import VERBS
from provisioner.output import PROG

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


def epilog(verb: str) -> Callable[[], str]:
    def made() -> str:
        reasons: dict[str, int] = {}
        if verb in ("run", "resume", "boot"):
            from provisioner.commands.common import load_definition

            reasons = dict(load_definition(None).reasons)
        return exits.epilog(verb, reasons)

    return made


class Parser(argparse.ArgumentParser):
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


def parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    """The command line parsed; a UsageError that shows back no word long enough to be the token."""
    try:
        return parser.parse_args(words)
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


def with_verb(argv: Sequence[str]) -> list[str]:
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
    from provisioner.values import BadValue, parse_url

    try:
        return word is not None and (word == "" or parse_url(word) is not None)
    except BadValue:
        return False


def check_old_call(args: argparse.Namespace) -> None:
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

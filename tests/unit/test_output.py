"""What leaves the process: the token is masked where it would be printed, and nothing of ours is rewritten."""

from __future__ import annotations

from provisioner.output import MESSAGE_MAX, Redactor, bounded
from provisioner.record import url_secrets
from provisioner.secret import Secret
from tests.helpers.constants import TOKEN


def test_a_short_token_is_masked_only_where_it_stands_as_a_word_of_its_own() -> None:
    redact = Redactor()
    redact.add(Secret("init"))
    ours = "status=init_started jupyter-init: `jupyter-init resume` sends the rest; initialising"
    assert redact(ours) == ours
    quoted = "GET /?token=init&next=/tree 'init' \"init\" token init"
    assert redact(quoted) == "GET /?token=***&next=/tree '***' \"***\" token ***"


def test_a_token_of_sixteen_characters_or_more_is_masked_wherever_it_appears() -> None:
    redact = Redactor()
    redact.add(Secret(TOKEN))
    assert redact(f"x{TOKEN}y {TOKEN}_started -{TOKEN}-") == "x***y ***_started -***-"


def test_a_callback_urls_short_password_is_masked_in_the_url_and_nowhere_else() -> None:
    redact = Redactor()
    for secret in url_secrets("http://jupyter:pa55@platform.example/cb"):
        redact.add(Secret(secret))
    assert redact("POST http://jupyter:pa55@platform.example/cb failed; see jupyter.log, pa55word stays") == (
        "POST http://jupyter:***@platform.example/cb failed; see jupyter.log, pa55word stays"
    )


def test_a_long_message_is_cut_in_its_middle_after_the_token_is_masked() -> None:
    redact = Redactor()
    redact.add(Secret(TOKEN))
    text = "cannot use /" + "a" * 100_000 + f"/{TOKEN}: File name too long"
    cut = bounded(redact(text))
    assert len(cut) < MESSAGE_MAX + 60 and cut.startswith("cannot use /aaa") and cut.endswith("***: File name too long")
    assert "(99,9" not in cut and f"({len(redact(text)) - MESSAGE_MAX} characters left out)" in cut
    assert bounded("short") == "short"

"""What root's monitor does with the worker's requests, in process: whatever bytes the account's worker sends, an
answer and nothing done for a bad one; a unit started only when root's own command line asked for one. The attacks by
a real second account against the CLI run as root are tests/e2e/test_privsep.py's."""

from __future__ import annotations

import pytest

from provisioner import privsep, systemd
from provisioner.values import locate_user


@pytest.mark.parametrize(
    ("request_line", "error"),
    [
        (b"[" * 100_000, "does not understand"),
        (b"not json\n", "does not understand"),
        (b'["launch"]\n', "does not understand"),
        (b'{"op": "chown"}\n', "does not understand"),
        (b'{"op": "launch"}\n', "'port'"),
        (b'{"op": "launch", "port": "8008", "argv": ["x"], "env": {}, "log": "/l"}\n', "not a port"),
        (b'{"op": "launch", "port": 8008, "argv": [], "env": {}, "log": "/l"}\n', "not a command line"),
        (b'{"op": "launch", "port": 8008, "argv": ["x"], "env": {"A": 1}, "log": "/l"}\n', "not an environment"),
        (b'{"op": "launch", "port": 8008, "argv": ["x"], "env": {}, "log": "rel"}\n', "not a log path"),
        (b'{"op": "stop", "unit": "sshd.service", "timeout": 1}\n', "is not a unit of nobody's"),
        (b'{"op": "stop", "unit": "jupyter-notebook-root-1.service", "timeout": 1}\n', "is not a unit of nobody's"),
    ],
)
def test_the_monitor_answers_any_request_from_the_worker_without_acting_on_a_bad_one(
    request_line: bytes, error: str, root: None
) -> None:
    """What the worker sends root is data: whatever its bytes, the monitor answers an error and does nothing."""
    nobody = locate_user("nobody")
    answer = privsep._serve(nobody, request_line, systemd.services(launch=True))
    assert error in answer.get("error", ""), answer


def test_the_monitor_starts_a_unit_only_when_roots_command_line_asked_for_one(root: None) -> None:
    """The record may say `launcher = systemd`; root's own command line decides whether root starts a unit."""
    nobody = locate_user("nobody")
    request = b'{"op": "launch", "port": 8008, "argv": ["x"], "env": {}, "log": "/l"}\n'
    assert (
        "root was not asked to launch for nobody"
        in privsep._serve(nobody, request, systemd.services(launch=False))["error"]
    )

"""Who may change a path, as root judges it: only root, one account (whom root then acts as), or too many to trust.

The system's own `nobody` stands for another account: these need root, not an account made for the test.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from provisioner import ownership
from provisioner.errors import UsageError

NOBODY = pwd.getpwnam("nobody")
NO_ACCOUNT = 4242421  # a uid no account has


@pytest.fixture
def place(tmp_path: Path, root: None) -> Path:
    """A directory only root can change, in a way only root can change (tmp_path is under the sticky /tmp)."""
    directory = tmp_path / "place"
    directory.mkdir(mode=0o755)
    return directory


def test_a_directory_only_root_can_change_has_no_owner_to_act_as(place: Path) -> None:
    assert ownership.owner_of(place) is None
    assert ownership.owner_of(place / "not-yet") is None
    ownership.check_root_input(place, "--states")


def test_a_directory_an_account_owns_is_that_accounts(place: Path) -> None:
    os.chown(place, NOBODY.pw_uid, NOBODY.pw_gid)
    owner = ownership.owner_of(place)
    assert owner is not None and (owner.name, owner.uid) == ("nobody", NOBODY.pw_uid)
    # And what is made in it would be too: the account could replace it.
    assert ownership.owner_of(place / "not-yet") == owner


def test_a_file_another_account_owns_is_not_roots_input(place: Path) -> None:
    token = place / "token"
    token.write_text("a-token-of-many-characters")
    os.chown(token, NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(UsageError, match=r"^--token-file: .* is nobody's; as root, give a file that only root"):
        ownership.check_root_input(token, "--token-file")


def test_a_directory_every_account_may_write_in_is_refused(place: Path) -> None:
    place.chmod(0o777)
    with pytest.raises(UsageError, match="can be changed by any account"):
        ownership.owner_of(place / "output")


def test_a_uid_with_no_account_is_refused_rather_than_guessed(place: Path) -> None:
    os.chown(place, NO_ACCOUNT, NO_ACCOUNT)
    with pytest.raises(UsageError, match=f"belongs to uid {NO_ACCOUNT}, which has no account"):
        ownership.owner_of(place)


def test_a_link_is_followed_only_where_no_other_account_could_have_made_it(place: Path) -> None:
    target = place / "target"
    target.write_text("definition")
    link = place / "link"
    link.symlink_to(target)
    os.lchown(link, NOBODY.pw_uid, NOBODY.pw_gid)
    # In a directory only root writes in, whoever owns the link could not have put it there: it is root's way.
    ownership.check_root_input(link, "--states")
    place.chmod(0o1777)  # as /tmp: every account may make links here, and remove its own
    with pytest.raises(UsageError, match="is a link another account could have made; give the real path"):
        ownership.check_root_input(link, "--states")

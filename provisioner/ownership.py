"""Who may change a path: root trusts a file or a directory only when no other account can change it, nor any
directory on the way to it (through its links), by mode, group or ACL; and an output directory belongs to the account
that alone can change it."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path
from typing import NoReturn

from provisioner.errors import UsageError, shown_path
from provisioner.values import Account

ANYONE = -1  # among the accounts that can change a path: a group's members, or every account
MAX_LINKS = 40  # as the kernel's ELOOP
ACL = "system.posix_acl_access"


def owner_of(path: Path, what: str = "--output-dir") -> Account | None:
    """As root: the account that controls `path`, whom root acts as there; None when only root does.

    An account controls a path when it can change the path or the way to it: it owns a directory on the way (and so
    can rename or replace what is in it), or may write in one, or owns the directory at its end (or, where the path
    does not exist yet, the directory it would be made in). Root acts as that account, which can then do nothing
    it could not do itself, however it changes the path afterwards; root acts as itself only where no other account
    can change any of it. More than one account, a group, an ACL, a link another account could have made:
    refused. The way is walked part by part with lstat, never through a link blindly, and where it ends must be
    where the kernel's own lookup of the path ends (a link in /proc leads elsewhere than it reads).
    """
    if os.geteuid() != 0:
        return None
    changers = _Walk(path, what).changers()
    changers.discard(0)
    if not changers:
        return None
    if ANYONE in changers or len(changers) > 1:
        raise UsageError(
            f"{what}: {shown_path(path)} can be changed by {_named(changers)}, so root will not use it; "
            "give one that only root, or only one account, can change"
        )
    [uid] = changers
    try:
        return Account.of(pwd.getpwuid(uid))
    except KeyError:
        raise UsageError(
            f"{what}: {shown_path(path)} belongs to uid {uid}, which has no account; refusing it"
        ) from None


def _named(changers: set[int]) -> str:
    """Who can change a path, in words: the accounts by name, then "any account" for a group, an ACL or everyone."""
    names = []
    for uid in sorted(changers - {ANYONE}):
        try:
            names.append(pwd.getpwuid(uid).pw_name)
        except KeyError:
            names.append(f"uid {uid}")
    if ANYONE in changers:
        names.append("any account (through its group, an ACL or its mode)")
    return " and ".join(names)


def check_output_dir(path: Path, account: Account) -> None:
    """As root for `account`: its output directory must be one only it (or root) controls; another account's would
    hand the record, and so what a later `resume` runs as `account`, to that other account."""
    # The account's own links are followed: what they lead to, the worker reaches with the account's rights alone.
    others = _Walk(path, "--output-dir", trusted=account.uid).changers() - {0, account.uid}
    if others:
        raise UsageError(
            f"--output-dir: {shown_path(path)} can be changed by {_named(others)}; as root for {account.name}, give "
            f"a directory only {account.name} (or root) can change"
        )


class _Walk:
    """One walk of a path from /, resolving root's own links by hand, collecting who could change each part."""

    def __init__(self, path: Path, what: str, trusted: int = 0) -> None:
        self.path = path if path.is_absolute() else Path(os.getcwd()) / path  # as given: `..` is the walk's
        self.what = what
        self.trusted = {0, trusted}  # whose links may be followed: root's, and the account root acts for
        self.given = shown_path(path)  # not made absolute: a token given here by mistake stays unshown

    def refuse(self, why: str) -> NoReturn:
        raise UsageError(f"{self.what}: {self.given}: {why}")

    def changers(self) -> set[int]:
        """The uids that can change the path or the way to it (ANYONE for a group or everyone); 0 is root."""
        pending = [(name, False) for name in self.path.parts[1:]]  # (name, whether a link's target gave it)
        current, info, links = Path("/"), os.lstat("/"), 0
        changers: set[int] = set()
        while pending:
            name, from_link = pending.pop(0)
            if name == "..":  # as the kernel does: the parent of where the walk is, links already resolved
                current = current.parent
                info = os.lstat(current)
                continue
            child = current / name
            child_info = self.lstat(child)
            if child_info is None:
                if from_link or any(linked for _, linked in pending):
                    self.refuse(f"{child} does not exist, and a link leads through it")
                self.same_as_the_kernel_finds(info, len(pending) + 1)
                return changers | _writers(current, info)  # whoever may make it there
            changers |= _entry_changers(current, info, child_info)
            if stat.S_ISLNK(child_info.st_mode):
                links += 1
                if changers - self.trusted or links > MAX_LINKS:
                    self.refuse(f"{child} is a link another account could have made; give the real path")
                target = Path(os.readlink(child))
                pending = [
                    (part, True) for part in (target.parts[1:] if target.is_absolute() else target.parts)
                ] + pending
                if target.is_absolute():
                    current, info = Path("/"), os.lstat("/")
                continue
            current, info = child, child_info
        self.same_as_the_kernel_finds(info, 0)
        # Whoever may write in it, or to it: for a directory, sticky or not (anyone may add to /tmp).
        return changers | _writers(current, info)

    def lstat(self, path: Path) -> os.stat_result | None:
        try:
            return os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.refuse(f"cannot look at {path}: {exc.strerror or exc}")

    def same_as_the_kernel_finds(self, walked: os.stat_result, missing: int) -> None:
        """Where the walk ended must be what the kernel finds at the path (its existing part)."""
        existing = Path(*self.path.parts[: len(self.path.parts) - missing]) if missing else self.path
        try:
            found = os.stat(existing)
        except OSError:
            found = None
        if found is None or (found.st_dev, found.st_ino) != (walked.st_dev, walked.st_ino):
            self.refuse("it leads elsewhere than it reads (a link in /proc), or changed while it was checked")


def _writers(path: Path, info: os.stat_result) -> set[int]:
    """Who may write to it: its owner (who may also chmod it), and a group, an ACL's entries or everyone, if its
    mode lets them."""
    writers = {info.st_uid}
    group_write = info.st_mode & stat.S_IWGRP
    if info.st_mode & stat.S_IWOTH or (group_write and (_has_acl(path) or not _own_group(info))):
        writers.add(ANYONE)
    return writers


def _has_acl(path: Path) -> bool:
    """Whether an access ACL names more than the mode shows (its group bits are then the ACL's mask)."""
    try:
        os.getxattr(path, ACL, follow_symlinks=False)
    except OSError:
        return False
    return True


def _own_group(info: os.stat_result) -> bool:
    """Whether the group is its owner's own private group (useradd's default): no other account is in it, by its
    member list or as its primary group."""
    try:
        owner = pwd.getpwuid(info.st_uid)
        members = grp.getgrgid(info.st_gid).gr_mem
    except KeyError:
        return False
    others = [entry for entry in pwd.getpwall() if entry.pw_gid == info.st_gid and entry.pw_uid != owner.pw_uid]
    return owner.pw_gid == info.st_gid and not members and not others


def _entry_changers(directory: Path, info: os.stat_result, entry: os.stat_result) -> set[int]:
    """Who can rename, remove or replace `entry` in `directory`: in a sticky one (/tmp), only the two owners."""
    if info.st_mode & stat.S_ISVTX:
        return {info.st_uid, entry.st_uid}
    return _writers(directory, info)


def check_root_input(path: Path, what: str) -> None:
    """As root: an input read as root (--token-file, --states) must be one that no other account can change."""
    owner = owner_of(path, what)
    if owner is not None:
        raise UsageError(
            f"{what}: {shown_path(path)} is {owner.name}'s; as root, give a file that only root can change"
        )

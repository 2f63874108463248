"""The server comes back after every reboot, and the platform hears it: root keeps what the first run was given.

`jupyter-init run --launcher systemd --user NAME` as root (the examples' way) keeps, in root's own directory
(systemd.system_dir, 0700): NAME.boot.json (the settings, the callback URLs, root's module environment, how many boots
ran it, the last boot reported), NAME.token and, with --signing-key-file, NAME.key, each 0600; and it enables
jupyter-init-boot@NAME.service, which runs `jupyter-init boot --user NAME` as root at every boot, with this
installation's own interpreter. At boot, that runs the kept settings again, as a run of their own (module load, port
check, start, verify, callbacks that carry `boot` and `boot_id`) unless this boot was reported already, or the
account's record says `jupyter-init stop` stopped the server.

Nothing the account can change decides what root runs at boot: the kept files and the unit are root's, and the unit
is enabled only when no other account can change the interpreter or the package it runs.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from provisioner import files, ownership, privsep, systemd
from provisioner.definition import Definition
from provisioner.errors import UsageError
from provisioner.output import log
from provisioner.secret import Secret
from provisioner.settings import Settings

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # the kernel's, new at every boot
UNIT_DIR = Path("/etc/systemd/system")
UNIT_DIR_ENV = "PROVISIONER_UNIT_DIR"  # root's own environment may move it (the tests do)
TEMPLATE = "jupyter-init-boot@.service"
WANTED_BY = "multi-user.target"
PLAN_LIMIT = 256 * 1024
# An account name systemd takes as an instance as it is, with nothing to escape.
INSTANCE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def boot_id() -> str | None:
    """This boot's id, as the kernel gives it (None where it gives none)."""
    try:
        return BOOT_ID.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class Boot:
    """A run at boot: which boot of the VM it is for the platform (2 after the first reboot), and the kernel's id."""

    count: int
    id: str

    def fields(self) -> dict[str, str]:
        return {"boot": str(self.count), "boot_id": self.id}


@dataclass(frozen=True)
class Plan:
    """What the boot unit runs again, all of it root's: the run's settings as `resolve` takes them, its callback URLs
    whole, the definition it was given (None: the shipped one), root's module environment, the boot count, the boot
    last reported (`run` reports the first; `boot` each later one, once)."""

    settings: dict[str, Any]
    urls: dict[str, str | None]
    states: str | None
    environment: dict[str, str]
    boots: int = 1
    reported: str = ""
    signed: bool = False  # whether a key is kept beside it (NAME.key)
    schema: int = field(default=1)


def _paths(name: str, directory: Path | None = None) -> tuple[Path, Path, Path]:
    directory = directory or systemd.system_dir()
    return directory / f"{name}.boot.json", directory / f"{name}.token", directory / f"{name}.key"


def unit_dir() -> Path:
    return Path(os.environ.get(UNIT_DIR_ENV) or UNIT_DIR)


def unit_text() -> str:
    """The template unit: this installation's interpreter, isolated (-I: no PYTHONPATH, no user site, no working
    directory on sys.path), runs `boot` as root once the network and remote file systems (a CernVM-FS stack) are up.
    Type=exec: the boot goes on while a cold module load takes its minutes."""
    moved = os.environ.get(systemd.SYSTEM_DIR_ENV)
    environment = f'Environment="{systemd.SYSTEM_DIR_ENV}={moved}"\n' if moved else ""
    return (
        "# Written by jupyter-init: brings %i's Jupyter server back at every boot and tells the platform.\n"
        "[Unit]\n"
        "Description=Jupyter server of %i, brought back after a reboot (jupyter-init)\n"
        "Wants=network-online.target\n"
        "After=network-online.target remote-fs.target nss-user-lookup.target systemd-user-sessions.service\n"
        "\n"
        "[Service]\n"
        "Type=exec\n"
        f"{environment}"
        f'ExecStart="{sys.executable}" -I -m provisioner boot --user %i\n'
        "\n"
        "[Install]\n"
        f"WantedBy={WANTED_BY}\n"
    )


def _runnable_as_root() -> str | None:
    """Why the boot unit may not run this installation as root: a part of it another account can change."""
    package = Path(__file__).resolve().parent
    for path in (Path(sys.executable), Path(os.path.realpath(sys.executable)), package, package.parent):
        try:
            owner = ownership.owner_of(path, "the installation")
        except UsageError as exc:
            return exc.message
        if owner is not None:
            return f"{path} can be changed by {owner.name}"
    return None


def keep(settings: Settings, definition: Definition, shipped: Path) -> None:
    """As root, before acting for the account: keep what a boot needs and enable the unit, or say why not (the run
    goes on either way: it is this boot's)."""
    user = settings.user
    assert user is not None, "only a run for an account is brought back"
    problem = None if INSTANCE.fullmatch(user.name) else f"the account name {user.name!r} is not one systemd takes"
    problem = problem or _runnable_as_root()
    if problem is None:
        try:
            _keep(user.name, settings, None if Path(definition.source) == shipped else definition.source)
            _enable(user.name)
        except OSError as exc:
            problem = exc.strerror or str(exc)
    if problem is not None:
        log.warning("warning: the server will not come back after a reboot: %s", problem)


def _keep(name: str, settings: Settings, states: str | None) -> None:
    _, token_path, key_path = _paths(name)
    public = {**settings.public(), **{key: url for key, url in settings.urls().items() if url}}
    # Root's module system and locale as the run had them; our own variables are the unit's to set.
    kept = {k: v for k, v in os.environ.items() if privsep.is_kept(k) and not k.startswith("PROVISIONER_")}
    signed = settings.signing_key is not None
    plan = Plan(public, settings.urls(), states, kept, reported=boot_id() or "", signed=signed)
    if settings.token is not None:
        files.write_private(token_path, settings.token.reveal())
    else:
        token_path.unlink(missing_ok=True)
    if settings.signing_key is not None:
        settings.signing_key.keep(key_path)
    else:
        key_path.unlink(missing_ok=True)
    save(name, plan)


def save(name: str, plan: Plan) -> None:
    files.write_private(_paths(name)[0], json.dumps(asdict(plan), indent=2) + "\n")


def _enable(name: str) -> None:
    """What `systemctl enable` does, without a running systemd: the template, and the instance wanted at boot."""
    directory = unit_dir()
    template = directory / TEMPLATE
    files.write_private(template, unit_text())
    os.chmod(template, 0o644)  # systemd reads units as root; 0644 is what every unit file has
    wants = directory / f"{WANTED_BY}.wants"
    wants.mkdir(mode=0o755, exist_ok=True)
    link = wants / TEMPLATE.replace("@", f"@{name}")
    link.unlink(missing_ok=True)
    link.symlink_to(template)


def forget(name: str) -> None:
    """A run for the account without --launcher systemd: nothing of an earlier one's comes back at boot."""
    if not INSTANCE.fullmatch(name):
        return
    try:
        link = unit_dir() / f"{WANTED_BY}.wants" / TEMPLATE.replace("@", f"@{name}")
        link.unlink(missing_ok=True)
        directory = systemd.system_dir(create=False)
        for path in _paths(name, directory) if directory is not None else ():
            path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("warning: an earlier run's boot unit for %s is still there: %s", name, exc.strerror or exc)


def load(name: str) -> tuple[Plan, Secret | None, Path | None] | None:
    """The kept plan, token and key file of `name`'s run, or None when none is kept. UsageError when it is not
    what `keep` writes."""
    plan_path, token_path, key_path = _paths(name)
    try:
        data = json.loads(files.read_regular(plan_path, PLAN_LIMIT))
        plan = Plan(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"the boot plan {plan_path} cannot be used: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        token = Secret(files.read_regular(token_path, PLAN_LIMIT).decode("utf-8"))
    except FileNotFoundError:
        token = None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise UsageError(f"the kept token {token_path} cannot be read: {why}") from None
    return plan, token, key_path if plan.signed else None


def next_boot(name: str, plan: Plan, current: str) -> Plan:
    """Count this boot and mark it reported, before anything is sent: a second `boot` in it sends nothing."""
    counted = replace(plan, boots=plan.boots + 1, reported=current)
    save(name, counted)
    return counted

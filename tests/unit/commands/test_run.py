"""`jupyter-init run`, in process: what makes a recorded server another one than a run asks for. Adopting and
replacing real servers is tests/e2e/commands/test_run.py's."""

from __future__ import annotations

from pathlib import Path

from provisioner.commands.run import differences_from
from provisioner.record import Record, Server
from provisioner.secret import Secret
from provisioner.settings import resolve
from provisioner.store import Store
from tests.helpers.constants import TOKEN


def test_another_front_end_is_another_server_and_an_older_record_was_notebook(tmp_path: Path) -> None:
    store = Store(tmp_path / "out")
    store.lock()
    store.save_token(Secret(TOKEN))
    settings = resolve({"app": "lab"}, {"HOME": str(tmp_path)}, {}, Secret(TOKEN))
    server = Server(pid=2, start_time=1, started="", port=8008)
    recorded = Record(settings={**settings.public(), "app": "notebook"}, server=server)
    assert differences_from(recorded, settings, store) == ["another app"]
    older = Record(settings={k: v for k, v in settings.public().items() if k != "app"}, server=server)
    assert differences_from(older, settings, store) == ["another app"]
    notebook = resolve({}, {"HOME": str(tmp_path)}, {}, Secret(TOKEN))
    assert differences_from(older, notebook, store) == []

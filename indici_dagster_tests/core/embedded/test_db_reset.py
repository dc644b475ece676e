"""`indici db reset` deletes only what the project created: a PostgreSQL cluster of the
server's user, and the passfile and socket folders and files indici writes, never through a
symlink. Anything else is kept, with one line saying why.

The clusters here are stand-ins (a folder of the server's user holding `PG_VERSION`, with no
server running): what reset recognises is on disk, and no server is needed to check it.
"""

import os
import pwd
import tempfile
from pathlib import Path

import pytest

from indici_dagster.cli import main
from indici_dagster.core.embedded.cluster import SOCKET_DIR_PREFIX, server_uid
from indici_dagster.core.embedded.private_files import passfile_line, private_dir, write_private
from indici_dagster.core.embedded.server import paths_for

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="another user's files need root")


@pytest.fixture(autouse=True)
def _own_folder(tmp_path, monkeypatch):
    for name in [name for name in os.environ if name.startswith("INDICI_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INDICI_PG_DIR", str(tmp_path / ".indici" / "pg"))


def _nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


def _cluster(data_dir: Path) -> Path:
    """A stopped embedded server as indici leaves it: data, passfiles, socket folder."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    owner = server_uid()
    private_dir(data_dir, owner)
    (data_dir / "PG_VERSION").write_text("18\n")
    os.chown(data_dir / "PG_VERSION", owner, -1)
    paths = paths_for(data_dir)
    private_dir(paths.auth_dir, os.geteuid())
    for role in ("writer", "reader", "superuser"):
        write_private(paths.passfile(role), passfile_line(role, "x" * 32))
    (paths.auth_dir / "start.lock").touch(mode=0o600)
    private_dir(paths.socket_dir_beside, owner)
    return data_dir


def _reset(capsys) -> list[str]:
    assert main(["db", "reset", "--yes"]) == 0
    return capsys.readouterr().out.strip().splitlines()


def test_a_symlinked_passfile_folder_is_kept_and_nothing_is_written_through_it(tmp_path, capsys):
    data_dir = _cluster(tmp_path / ".indici" / "pg")
    paths = paths_for(data_dir)
    elsewhere = tmp_path / "elsewhere"
    paths.auth_dir.rename(elsewhere)
    (elsewhere / "keep.txt").write_text("mine")
    paths.auth_dir.symlink_to(elsewhere)
    before = sorted(path.name for path in elsewhere.iterdir())

    lines = _reset(capsys)

    assert (
        f"kept {paths.auth_dir}: it is a symbolic link, and indici never deletes through one"
        in (lines)
    )
    assert paths.auth_dir.is_symlink()
    assert sorted(path.name for path in elsewhere.iterdir()) == before  # no lock made there
    assert not data_dir.exists()


def test_a_file_indici_did_not_write_in_the_passfile_folder_is_kept(tmp_path, capsys):
    data_dir = _cluster(tmp_path / ".indici" / "pg")
    paths = paths_for(data_dir)
    (paths.auth_dir / "notes.txt").write_text("mine")

    lines = _reset(capsys)

    assert f"kept {paths.auth_dir}: it holds 1 entry indici did not create (notes.txt)" in lines
    assert sorted(path.name for path in paths.auth_dir.iterdir()) == ["notes.txt"]
    assert not data_dir.exists()


def test_a_socket_folder_indici_did_not_make_is_kept(tmp_path, capsys):
    data_dir = _cluster(tmp_path / ".indici" / "pg")
    paths = paths_for(data_dir)
    beside = paths.socket_dir_beside
    beside.rmdir()
    beside.mkdir(mode=0o755)  # a folder of that name that indici did not make (not 0700)
    os.chmod(beside, 0o755)
    (beside / "plans.txt").write_text("mine")
    os.chown(beside, server_uid(), -1)  # even the server's user's: the mode says it is not ours

    lines = _reset(capsys)

    assert f"kept {beside}: its mode is 0755, and the folders indici makes are 0700" in lines
    assert (beside / "plans.txt").read_text() == "mine"
    assert not data_dir.exists() and not paths.auth_dir.exists()


@ROOT_ONLY
def test_a_socket_folder_of_another_user_named_in_the_settings_is_kept(tmp_path, capsys):
    data_dir = _cluster(tmp_path / ".indici" / "pg")
    theirs = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX))
    try:
        os.chown(theirs, _nobody(), -1)
        (data_dir / "indici.conf").write_text(f"unix_socket_directories = '{theirs}'\n")
        os.chown(data_dir / "indici.conf", server_uid(), -1)

        lines = _reset(capsys)

        assert (
            f"kept {theirs}: it belongs to user id {_nobody()}, not to user id {server_uid()}"
            in (lines)
        )
        assert theirs.is_dir() and not data_dir.exists()
    finally:
        theirs.rmdir()


@ROOT_ONLY
def test_a_data_folder_holding_another_users_file_is_refused_and_nothing_deleted(tmp_path, capsys):
    data_dir = _cluster(tmp_path / ".indici" / "pg")
    (data_dir / "base").mkdir()
    os.chown(data_dir / "base", server_uid(), -1)
    planted = data_dir / "base" / "theirs"
    planted.write_text("x")
    os.chown(planted, _nobody(), -1)

    assert main(["db", "reset", "--yes"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{planted} in the data folder belongs to another user: not deleting" in err
    assert planted.exists() and paths_for(data_dir).passfile("writer").exists()


@ROOT_ONLY
def test_a_data_folder_of_another_user_is_refused(tmp_path, capsys):
    data_dir = _cluster(tmp_path / ".indici" / "pg")
    os.chown(data_dir, _nobody(), -1)

    assert main(["db", "reset", "--yes"]) == 1
    assert f"{data_dir} belongs to user id {_nobody()}" in capsys.readouterr().err
    assert (data_dir / "PG_VERSION").exists()

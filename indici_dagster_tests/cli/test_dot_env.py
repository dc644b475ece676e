"""`.env` cannot take over: only the project's settings are taken from it, `indici doctor` names
the rest as ignored (names, never values), and a `.env` that is not the user's own, or that
others may write, is refused with one line."""

import os
import pwd
import re
from pathlib import Path

import pytest

from indici_dagster.cli import main
from indici_dagster.cli.context import load_project_env

MARKER = "planted7value"
PROJECT = {
    "INDICI_TIMEZONE": "UTC",
    "DAGSTER_PG_HOST": "127.0.0.1",
    "AWS_PROFILE": "indici",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "ap-southeast-2",
    "AWS_REGION": "ap-southeast-2",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "PGSSLMODE": "require",
    "PGPASSFILE": "/nowhere/pgpass",
}
FOREIGN = {
    "PYTHONPATH": f"/tmp/{MARKER}",
    "PSQLRC": f"/tmp/{MARKER}/psqlrc",
    "LD_PRELOAD": f"/tmp/{MARKER}/evil.so",
    "PGOPTIONS": f"-c search_path={MARKER}",
    "PATH": f"/tmp/{MARKER}",
    "DAGSTER_HOME": f"/tmp/{MARKER}",
    "AWS_CONFIG_FILE": f"/tmp/{MARKER}",
}


@pytest.fixture(autouse=True)
def _own_folder_and_environment(tmp_path, monkeypatch):
    """Each test runs in its own folder; whatever `main` applies is undone afterwards."""
    saved = dict(os.environ)
    for name in [*PROJECT, *FOREIGN]:
        if name != "PATH":
            monkeypatch.delenv(name, raising=False)
    for name in [name for name in os.environ if name.startswith("INDICI_")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _write_env(folder: Path, values: dict[str, str], mode: int = 0o600) -> Path:
    path = folder / ".env"
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    os.chmod(path, mode)
    return path


def _nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


def test_only_the_project_settings_are_taken_from_dot_env(tmp_path):
    _write_env(tmp_path, {**PROJECT, **FOREIGN})
    environ = {"PATH": "/usr/bin:/bin"}

    found = load_project_env(tmp_path, environ)

    assert environ == {"PATH": "/usr/bin:/bin", **PROJECT}
    assert set(found.applied) == set(PROJECT)
    assert set(found.ignored) == set(FOREIGN)


def test_doctor_names_the_ignored_variables_never_their_values(tmp_path, capsys):
    _write_env(tmp_path, {"INDICI_TIMEZONE": "UTC", **FOREIGN})

    main(["doctor"])
    out = capsys.readouterr().out

    ignored = [line for line in out.splitlines() if "ignored, not project settings" in line]
    assert len(ignored) == 1 and ignored[0].startswith("warn")
    for name in FOREIGN:
        assert name in ignored[0]
    assert "dagster dev still loads" in ignored[0]
    assert re.search(r"\.env +1 variables from", out)
    assert MARKER not in out
    assert os.environ.get("PYTHONPATH") is None and os.environ["INDICI_TIMEZONE"] == "UTC"


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_dot_env_others_may_write_is_refused_with_one_line(tmp_path, capsys, mode):
    _write_env(tmp_path, {"INDICI_TIMEZONE": "UTC"}, mode)

    assert main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "writable by group or others" in err and "chmod 600 .env" in err
    assert "INDICI_TIMEZONE" not in os.environ


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_dot_env_of_another_user_is_refused_with_one_line(tmp_path, capsys):
    path = _write_env(tmp_path, {"INDICI_TIMEZONE": "UTC"}, 0o644)
    os.chown(path, _nobody(), -1)

    assert main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"belongs to user id {_nobody()}, not to you" in err
    assert "INDICI_TIMEZONE" not in os.environ


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_dot_env_linking_to_another_users_file_is_refused(tmp_path, capsys):
    elsewhere = tmp_path / "theirs.env"
    elsewhere.write_text("INDICI_TIMEZONE=UTC\n")
    os.chown(elsewhere, _nobody(), -1)
    (tmp_path / ".env").symlink_to(elsewhere)

    assert main(["doctor"]) == 1
    assert f"belongs to user id {_nobody()}" in capsys.readouterr().err
    assert "INDICI_TIMEZONE" not in os.environ


def test_a_dot_env_that_is_not_a_file_is_refused_but_a_folder_is_none(tmp_path, capsys):
    os.mkfifo(tmp_path / ".env", 0o600)  # would block a reader for ever

    assert main(["doctor"]) == 1
    assert "is not a regular file" in capsys.readouterr().err

    # a virtualenv is often called .env: python-dotenv (dagster dev) reads nothing from it
    (tmp_path / ".env").unlink()
    (tmp_path / ".env").mkdir()
    assert load_project_env(tmp_path, {}).path is None

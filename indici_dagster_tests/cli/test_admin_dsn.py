"""`--admin-dsn embedded`: bootstrap an analyst on the laptop database, and rotate its key,
without building the superuser's DSN by hand."""

import os
from pathlib import Path

import psycopg2

from indici_dagster.cli import main
from indici_dagster.core.embedded.server import embedded_dsn, server_status
from indici_dagster_tests.support.embedded import server_folder

PASSWORD = "analyst-pw-7marker"


def _clean(monkeypatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("INDICI_")]:
        monkeypatch.delenv(name, raising=False)
    for name in ("PGPASSWORD", "PGPASSFILE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_bootstrap_and_rotate_key_take_the_laptop_database_as_embedded(
    tmp_path, monkeypatch, capsys
):
    _clean(monkeypatch, tmp_path)
    with server_folder("pg") as data_dir:
        monkeypatch.setenv("INDICI_PG_DIR", str(data_dir))
        monkeypatch.setenv("INDICI_ANALYST_PASSWORD", PASSWORD)
        embedded_dsn(data_dir)

        assert main(["bootstrap", "--admin-dsn", "embedded", "--analyst", "indici_analyst"]) == 0
        out = capsys.readouterr().out
        assert "created role indici_analyst" in out and "user=postgres" in out
        assert (
            "granted CONNECT (only: no CREATE, no TEMPORARY) on database indici to indici_analyst"
            in out
        )
        assert PASSWORD not in out
        socket_dir = server_status(data_dir).socket_dir
        with (
            psycopg2.connect(
                host=str(socket_dir), dbname="indici", user="indici_analyst", password=PASSWORD
            ) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT current_user, has_schema_privilege('rpt', 'USAGE')")
            assert cursor.fetchone() == ("indici_analyst", False)
        connection.close()

        monkeypatch.setenv("INDICI_ADMIN_DSN", "embedded")
        assert main(["analyst", "rotate-key"]) == 0
        assert "replaced the pseudonym key" in capsys.readouterr().out


def test_embedded_admin_dsn_is_refused_for_another_warehouse_and_creates_nothing(
    tmp_path, monkeypatch, capsys
):
    _clean(monkeypatch, tmp_path)
    assert main(["analyst", "rotate-key", "--admin-dsn", "embedded"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no database" in err and "INDICI_PG_DIR" in err
    assert not (tmp_path / ".indici").exists()

    monkeypatch.setenv("INDICI_PG_DSN", "host=127.0.0.1 port=1 dbname=x user=y")
    assert main(["bootstrap", "--admin-dsn", "embedded"]) == 1
    err = capsys.readouterr().err
    assert "names the laptop database, but INDICI_PG_DSN names another warehouse" in err

    monkeypatch.delenv("INDICI_PG_DSN")
    assert main(["bootstrap"]) == 1
    assert "'embedded' for the laptop database" in capsys.readouterr().err

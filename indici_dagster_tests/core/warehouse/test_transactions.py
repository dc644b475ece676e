"""Who commits: the core's unit of work, never a Dagster module.

`Warehouse.transaction()` commits a block's statements together or none of them; the Dagster
side (`defs/`, `lib/`, `definitions.py`) writes only through it or through core functions that
own their transactions, and never calls `commit()` itself.
"""

import ast
from pathlib import Path

import pytest

from indici_dagster_tests.support.common import query


def _rows(database: str) -> int:
    return query(database, "SELECT count(*) FROM indici_staging.auditlog WHERE source_file = 'tx'")[
        0
    ][0]


def _insert(cursor) -> None:
    cursor.execute(
        "INSERT INTO indici_staging.auditlog (step, status, source_file, message) "
        "VALUES ('landing', 'error', 'tx', 'transaction test')"
    )


def test_a_transaction_commits_its_statements_together(warehouse, database):
    with warehouse.transaction() as cursor:
        _insert(cursor)
        _insert(cursor)

    assert _rows(database) == 2


def test_a_transaction_that_raises_commits_nothing(warehouse, database):
    with pytest.raises(RuntimeError), warehouse.transaction() as cursor:
        _insert(cursor)
        raise RuntimeError("stop")

    assert _rows(database) == 0


def test_no_dagster_module_commits(repo_root: Path):
    package = repo_root / "indici_dagster"
    modules = [
        *sorted((package / "defs").rglob("*.py")),
        *sorted((package / "lib").rglob("*.py")),
        package / "definitions.py",
    ]
    commits = [
        f"{module.relative_to(repo_root)}:{node.lineno}"
        for module in modules
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "commit"
    ]

    assert commits == []

"""The environment of every program indici starts itself: an allow-list, never the caller's
whole environment.

The embedded server's starter, `initdb`, `pg_ctl`, `postgres` and `psql` see only the locale,
the search path for programs, the time zone and the temp and runtime folders (and, for an
interactive `psql`, the home folder and the terminal). So a `PYTHONPATH`, `PYTHONSTARTUP`,
`LD_PRELOAD`, `PGOPTIONS`, `PGPORT`, `PGHOST`, `PSQLRC` or `PAGER` set in the shell or in a
`.env` never reaches them: nothing runs code in the process that creates the cluster, and the
server's settings and connections are the ones indici writes.
"""

import os
from collections.abc import Iterable, Mapping

KEPT = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "XDG_RUNTIME_DIR")
"""What every program started by indici may see (plus `LC_*`)."""
TERMINAL = ("HOME", "TERM", "COLUMNS", "LINES")
"""What an interactive `psql` also needs: its history and `~/.psqlrc`, and the terminal."""


def clean_environment(
    extra: Iterable[str] = (), environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The allow-listed variables of `environ` (`KEPT`, `LC_*`, and `extra`); `PATH` defaults
    to the system's."""
    names = (*KEPT, *extra)
    kept = {name: environ[name] for name in names if name in environ}
    kept.update({name: value for name, value in environ.items() if name.startswith("LC_")})
    kept.setdefault("PATH", os.defpath)
    return kept

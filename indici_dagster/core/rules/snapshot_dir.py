"""Where the local copy of the rules snapshot lives, and which failures to keep it are quiet.

The local copy is a second chance for a code location whose DynamoDB table and partitioned
location are both unreachable. It lives in `INDICI_RULES_SNAPSHOT_DIR` when set, else under
`$DAGSTER_HOME/indici/rules` (writable in the image and in every deployment, unlike the code
location's working folder), else `./.indici/rules` (a laptop without `DAGSTER_HOME`). A folder
that is read-only costs only that second chance: it is logged at debug level, not warned about
at every start.
"""

import errno
import os
from collections.abc import Mapping
from pathlib import Path

LAPTOP_DIR = "./.indici/rules"
"""The folder used when neither `INDICI_RULES_SNAPSHOT_DIR` nor `DAGSTER_HOME` is set."""
_READ_ONLY = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def local_snapshot_dir(configured: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The local snapshot folder: `configured` (INDICI_RULES_SNAPSHOT_DIR) if given, else
    `$DAGSTER_HOME/indici/rules`, else `./.indici/rules`."""
    if configured:
        return configured
    home = environ.get("DAGSTER_HOME", "").strip()
    return str(Path(home) / "indici" / "rules") if home else LAPTOP_DIR


def is_read_only_error(error: BaseException) -> bool:
    """True for a write refused because the folder is not writable (permissions, a read-only
    file system): the local copy is then not kept, which is safe."""
    return isinstance(error, OSError) and error.errno in _READ_ONLY

"""A folder for an embedded server in a test: outside pytest's temporary tree, reachable by the
server's OS user as root without indici opening any folder, and cleaned up afterwards."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from indici_dagster.core.embedded.server import stop_server


@contextlib.contextmanager
def server_folder(name: str = "") -> Iterator[Path]:
    """A fresh folder (`name` inside it when given) whose servers are stopped and which is
    deleted at the end.

    pytest's tree is 0700 and, as root, the server runs as another OS user that indici never
    lets in by changing a folder's mode: so the folder is made here, under the temp folder,
    0711 as root (that user may enter it, not list it) and 0700 otherwise, as an administrator
    would prepare one.
    """
    base = Path(tempfile.mkdtemp(prefix="indici-emb-"))
    if os.geteuid() == 0:
        os.chmod(base, 0o711)
    try:
        yield base / name if name else base
    finally:
        for data_dir in base.rglob("PG_VERSION"):
            with contextlib.suppress(Exception):
                stop_server(data_dir.parent)
        shutil.rmtree(base, ignore_errors=True)

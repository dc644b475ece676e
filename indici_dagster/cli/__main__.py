"""`python -m indici_dagster.cli`: the `indici` command."""

import sys

from indici_dagster.cli import main

sys.exit(main())

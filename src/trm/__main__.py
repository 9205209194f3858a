"""``python -m trm`` runs the command line."""

import sys

from trm.cli import main

sys.exit(main())

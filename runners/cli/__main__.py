"""`python -m runners.cli ...` runs `selab ...`."""

import sys

from runners.cli.main import main

sys.exit(main())

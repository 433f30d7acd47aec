"""`python -m eventgate.cli`, as the engine's process runner and the tests start it."""

import sys

from eventgate.cli.main import main

sys.exit(main())

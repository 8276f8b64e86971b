"""``python -m uncertsam_utils.cli``: the ``uncertsam`` command."""

import sys

from . import main

sys.exit(main())

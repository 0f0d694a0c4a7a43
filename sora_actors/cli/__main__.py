"""``python -m sora_actors.cli``: the same as the ``sora-actors`` console script."""

import sys

from .main import main

sys.exit(main())

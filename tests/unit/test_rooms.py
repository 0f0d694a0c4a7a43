"""Which rooms may see which: checked by importing in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import sora_actors.upstream
import sora_actors.upstream.openai_compat
loaded = sorted(name for name in sys.modules if name.startswith("sora_actors.upstream.fake"))
print(" ".join(loaded))
"""


def test_the_real_adapter_loads_without_the_fake_upstream() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == []

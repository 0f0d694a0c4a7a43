"""The fake upstream: what stands in for OpenAI in tests, demos and load runs.

One job engine (`engine`) holds the fake's state and rules; the HTTP simulator
(`simulator`) serves it over the OpenAI Videos wire format, `MemoryProvider` (`memory`)
without HTTP, for virtual-time tests and benchmarks; `media` is the clip and previews
every fake job serves. The real adapter (`..openai_compat`) imports none of this.
"""

from .engine import DurationDistribution, FaultRates, KeyLimits, SimulatorConfig
from .memory import MemoryProvider
from .simulator import serve_simulator

__all__ = [
    "DurationDistribution",
    "FaultRates",
    "KeyLimits",
    "MemoryProvider",
    "SimulatorConfig",
    "serve_simulator",
]

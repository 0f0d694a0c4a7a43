"""The command line: ``sora-actors serve | migrate | simulator`` (`main`) and the client
commands ``submit`` and ``tasks`` that talk to a running server (`client`)."""

from .main import main

__all__ = ["main"]

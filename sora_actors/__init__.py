"""sora-actors: prompts in, videos out, one Trio actor per video task."""

__version__ = "0.1.0"

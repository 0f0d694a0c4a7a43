"""`python -m sora_actors.upstream.fake.simulator`: run the simulator standalone."""

from __future__ import annotations

import argparse
import contextlib
from functools import partial

import trio

from . import add_simulator_arguments, serve_simulator, simulator_config_from_args


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sora-actors simulator", description=__doc__)
    add_simulator_arguments(parser)
    run_from_args(parser.parse_args(argv))


def run_from_args(ns: argparse.Namespace) -> None:
    """Serve until interrupted; the first line on stdout says where (scripts parse it)."""
    config = simulator_config_from_args(ns)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(partial(serve_simulator, config, ns.host, ns.port))
            root = (
                url.rsplit(config.effective_base_path, 1)[0] if config.effective_base_path else url
            )
            print(
                f"simulator listening on {url} (admin: {root}/__admin/stats)",
                flush=True,
            )

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(run)


if __name__ == "__main__":
    main()

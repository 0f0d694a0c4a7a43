"""Benchmark (run by hand): what a polling policy costs, in polls, and what it makes users
wait, in lag between the upstream finishing and our noticing it.

Virtual time (trio's MockClock), the fake upstream's engine behind MemoryProvider (with its
``openai-poll-after-ms`` of 5 s), the real policies of `sora_actors.polling`, and per job the
actor's polling step: poll, ask the schedule, wait (or, on a webhook, ask
`Schedule.after_webhook` and poll once to confirm). Jobs arrive spread over ten minutes.

Mixes (seeded): (a) run times uniform 60-180 s, no queue, progress linear in time; (b) the
engine's defaults: 2-20 s queued, log-normal run times, uneven progress. With webhooks, the
engine announces each job end after 0.2-0.8 s and loses ``--loss`` of them (2 % and 5 % by
default); the channel has been delivering webhooks before the run (steady state). A
webhook is confirmed by one poll, no sooner than the last poll's poll-after allows.

    python bench/polling.py                 # 10,000 jobs per mix
    python bench/polling.py --jobs 2000 --loss 0.1
"""

from __future__ import annotations

import argparse
import random
import statistics
from dataclasses import dataclass

import trio
import trio.testing
from measure import percentile

from sora_actors.polling import PollingPolicy, PredictivePolicy, SteppedSchedule, WebhookWatch
from sora_actors.upstream import SubmitRequest
from sora_actors.upstream.fake import DurationDistribution, MemoryProvider, SimulatorConfig
from sora_actors.upstream.fake.engine import Engine, JobState, WebhookConfig
from sora_actors.upstream.fake.webhooks import announce_ends

CHANNEL = "default"
ARRIVALS_S = 600.0


@dataclass
class Result:
    polls: list[int]
    lags: list[float]
    lost_lags: list[float]  # with webhooks: the jobs whose webhook never came


def mixes(seed: int) -> dict[str, SimulatorConfig]:
    return {
        "a: uniform 60-180 s, linear": SimulatorConfig(
            seed=seed,
            progress_shape="linear",
            durations=DurationDistribution(
                queue_min_s=0.0,
                queue_max_s=0.0,
                run_min_s=60.0,
                run_max_s=180.0,
                run_shape="uniform",
            ),
        ),
        "b: engine's own, uneven": SimulatorConfig(seed=seed),
    }


async def follow(
    provider: MemoryProvider,
    policy: PollingPolicy,
    watch: WebhookWatch,
    hooks: dict[str, trio.Event],
    arrival: float,
    result: Result,
) -> None:
    """One task's submission and polling, as the actor does it (task.py `_poll`)."""
    await trio.sleep(arrival)
    job = await provider.submit(SubmitRequest("bench", seconds=8))
    hooked = hooks[job.id] = trio.Event()
    schedule = policy.schedule(trio.current_time(), submitted=True, webhooks=watch.signal(CHANNEL))
    poll_at = trio.current_time() + schedule.first_delay()
    polls = 0
    confirmed = False
    while True:
        with trio.move_on_at(poll_at):
            await hooked.wait()
        if hooked.is_set() and trio.current_time() < poll_at:
            hooked = trio.Event()  # one webhook, one confirming poll
            confirmed = True
            poll_at = trio.current_time() + schedule.after_webhook(trio.current_time())
            await trio.sleep_until(poll_at)
        seen = await provider.get(job.id)
        now = trio.current_time()
        polls += 1
        if seen.status.terminal:
            done = provider.engine.jobs[job.id].done
            result.polls.append(polls)
            result.lags.append(provider.engine.now() - done)
            if not (confirmed or hooked.is_set()) and provider.engine.webhooks is not None:
                result.lost_lags.append(result.lags[-1])
            hooks.pop(job.id, None)
            return
        poll_at = now + schedule.next_delay(
            now, seen.progress, failed=False, hint=seen.poll_after_s, retry_after=None
        )


async def run_mix(
    config: SimulatorConfig, policy: PollingPolicy, jobs: int, loss: float | None, seed: int
) -> Result:
    engine = Engine(config)
    provider = MemoryProvider(engine=engine)
    watch = WebhookWatch(trust_s=600.0)
    hooks: dict[str, trio.Event] = {}
    result = Result([], [], [])
    rng = random.Random(seed)
    arrivals = sorted(rng.uniform(0, ARRIVALS_S) for _ in range(jobs))

    async def deliver(state: JobState) -> None:
        watch.received(CHANNEL)
        event = hooks.get(state.job.id)
        if event is not None:
            event.set()

    async with trio.open_nursery() as nursery:
        if loss is not None:
            engine.set_webhooks(WebhookConfig("bench://", "whsec_", loss, 0.2, 0.8))
            watch.received(CHANNEL)  # steady state: the channel has been delivering
            nursery.start_soon(announce_ends, engine, deliver)
        async with trio.open_nursery() as followers:
            for arrival in arrivals:
                followers.start_soon(follow, provider, policy, watch, hooks, arrival, result)
        nursery.cancel_scope.cancel()
    return result


def measure(
    config: SimulatorConfig, policy: PollingPolicy, jobs: int, loss: float | None, seed: int
) -> Result:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(run_mix, config, policy, jobs, loss, seed, clock=clock)


def row(label: str, result: Result) -> str:
    polls = [float(p) for p in result.polls]
    return (
        f"{label:<40} {statistics.mean(polls):>7.2f} {percentile(polls, 95):>6.0f}"
        f" {statistics.mean(result.lags):>9.2f} {percentile(result.lags, 95):>7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--loss", default="0.02,0.05", help="shares of webhooks lost, one run each (comma list)"
    )
    args = parser.parse_args()
    policies: dict[str, PollingPolicy] = {
        "seed (5/10/15 s)": SteppedSchedule(),
        "predictive": PredictivePolicy(),
    }
    print(f"{args.jobs} jobs per mix, seed {args.seed}; lag = our COMPLETED - upstream end (s)")
    print(f"{'mix / policy':<40} {'polls':>7} {'p95':>6} {'lag mean':>9} {'p95':>7}")
    for mix, config in mixes(args.seed).items():
        print(mix)
        baseline: tuple[float, float] | None = None
        for name, policy in policies.items():
            for loss in (None, *(float(share) for share in args.loss.split(","))):
                hooks = "" if loss is None else f" + webhooks ({loss:.0%} lost)"
                result = measure(config, policy, args.jobs, loss, args.seed)
                print(row(f"  {name}{hooks}", result), flush=True)
                figures = statistics.mean(result.polls), statistics.mean(result.lags)
                if baseline is None:
                    baseline = figures
                elif loss is None:
                    print(
                        f"  {'':<38} x{figures[0] / baseline[0]:>6.2f}"
                        f" {'':>6} x{figures[1] / baseline[1]:>8.2f}   (of the seed's)"
                    )


if __name__ == "__main__":
    main()

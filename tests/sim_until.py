"""Run Amaranth's simulator until a testbench is done, with a time limit for a hang.

``Simulator.run_until`` runs on to its deadline even once every testbench has finished (the
clocks keep it going), so a test that gave a generous limit for a hang paid for all of it.
"""

__all__ = ["run_until_done"]


def run_until_done(sim, testbench, limit, step):
    """Add ``testbench`` to ``sim`` and run in ``step``-second slices until it returns or the
    simulated time reaches ``limit`` seconds; returns whether it returned."""
    done = []

    async def watched(ctx):
        await testbench(ctx)
        done.append(True)

    sim.add_testbench(watched)
    now = 0.0
    while not done and now < limit:
        now = min(now + step, limit)
        sim.run_until(now)
    return bool(done)

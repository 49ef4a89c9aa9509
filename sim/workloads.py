"""Random GEMM problems, shared by the demo, the benchmark and ``rvnpu sim``.

Each problem is fully determined by its seed, so a figure in a benchmark file or a failure
message can always be reproduced.
"""

import dataclasses

import numpy as np

from rvnpu.spec.config import EngineConfig
from rvnpu.compiler.gemm import compile_gemm
from rvnpu.sim.golden.gemm import Requant, gemm_reference
from rvnpu.sim.golden.engine import element_range
from rvnpu.sim.golden.requant import params_for_scale
from rvnpu.spec.requant import MODE_NAMES, mode_named


__all__ = ["GemmProblem", "random_gemm", "REQUANT_MODES"]

#: ``--requant`` choices: every requantisation mode of the spec, or raw int32 sums.
REQUANT_MODES = (*MODE_NAMES, "raw")


@dataclasses.dataclass
class GemmProblem:
    """Operands, their compiled engine job and the golden result."""
    m: int
    n: int
    k: int
    dataflow: str
    requant: str
    seed: int
    job: object
    expected: np.ndarray

    @property
    def macs(self):
        return self.m * self.n * self.k


def random_gemm(m, n, k, *, config=EngineConfig(), dataflow="ws", requant="tflite", seed=0,
                relu=False):
    """A random int GEMM ``requantize(A @ B + bias)`` with per-channel scales and zero points.

    The scales are chosen so that outputs spread over the whole output range and some
    saturate at both ends, which is where requantisation errors show.
    """
    if requant not in REQUANT_MODES:
        raise ValueError(f"requant must be one of {', '.join(REQUANT_MODES)}, not {requant!r}")
    rng = np.random.default_rng(seed)
    lo, hi = element_range(config.in_width, True)
    a = rng.integers(lo, hi + 1, (m, k))
    b = rng.integers(lo, hi + 1, (k, n))
    a_zero = int(rng.integers(lo // 4, hi // 4 + 1))
    bias = rng.integers(-(1 << 12), 1 << 12, n)
    # Products of uniform elements have a standard deviation of about hi**2 / 3, sums of k
    # of them sqrt(k) times that; mapping 1.5 of those onto the output range makes some
    # outputs saturate on both sides.
    sigma = max(1.0, hi * hi / 3 * np.sqrt(k))
    scale = hi / (1.5 * sigma) * rng.uniform(0.5, 2.0, n)
    out_lo, out_hi = element_range(config.in_width, True)
    if requant == "raw":
        rq = Requant(mode=None)
        bias = None
    else:
        rq = Requant(mode=requant, **params_for_scale(mode_named(requant), scale),
                     out_zero=int(rng.integers(-5, 6)),
                     clamp_min=0 if relu else out_lo, clamp_max=out_hi)
    job = compile_gemm(a, b, bias, rq, config=config, dataflow=dataflow, a_zero=a_zero)
    expected = gemm_reference(a, b, bias, rq, a_zero=a_zero)
    return GemmProblem(m=m, n=n, k=k, dataflow=dataflow, requant=requant, seed=seed, job=job,
                       expected=expected)

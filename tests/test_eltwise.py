"""``rvnpu_qlinear_add`` (firmware/lib/eltwise.c) compiled for the host against the numpy model
of onnxruntime's QLinearAdd rounding, on many random operands and scales: its integer
evaluation of the two fused multiply-adds must round exactly as float32 fmaf does. (On the
SoC it is checked against onnxruntime itself, in tests/test_onnx.py.)"""

import subprocess

import numpy as np

from rvnpu.spec.memory_map import SocConfig
from rvnpu.compiler.onnx.ir import Tensor
from rvnpu.compiler.onnx.reference import qlinear_add, qlinear_add_constants
from test_firmware_build import FIRMWARE_DIR, build_host

MAIN = r"""
#include <stdio.h>
#include "rvnpu.h"
uint8_t rvnpu_host_ram[16];
uint32_t rvnpu_host_issue(uint32_t f, uint32_t a, uint32_t b) { (void)f; (void)a; (void)b; return 0; }
int main(void)
{
    rvnpu_qadd_t q;
    uint8_t a[256], b[256], c[256];
    unsigned n, is_unsigned;
    int lo, hi;
    while (scanf("%u %u %d %d %a %a %a", &n, &is_unsigned, &lo, &hi, &q.ratio_a, &q.ratio_b,
                 &q.fixed) == 7) {
        for (unsigned i = 0; i < n; i++) {
            unsigned x, y;
            if (scanf("%u %u", &x, &y) != 2)
                return 1;
            a[i] = (uint8_t)x;
            b[i] = (uint8_t)y;
        }
        q.count = n; q.a = a; q.b = b; q.c = c;
        q.clamp_min = lo; q.clamp_max = hi; q.is_unsigned = is_unsigned;
        rvnpu_qlinear_add(&q);
        for (unsigned i = 0; i < n; i++)
            printf("%u ", c[i]);
        printf("\n");
    }
    return 0;
}
"""


def test_integer_fma_rounds_as_float32(tmp_path):
    # libm (for the soft-float fallback's fmaf) after the source that needs it
    exe = build_host(tmp_path, SocConfig(), [FIRMWARE_DIR / "lib" / "eltwise.c", "-lm"], MAIN)
    rng = np.random.default_rng(7)
    cases, lines = [], []
    for trial in range(400):
        dtype = np.uint8 if trial % 2 else np.int8
        lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
        if trial % 3 == 0:       # ratios of small fractions: many exact ties
            sc = np.float32(rng.uniform(0.01, 0.1))
            sa, sb = (np.float32(sc * rng.integers(1, 8) / rng.choice([2, 3, 4, 6, 8]))
                      for _ in range(2))
        else:                    # scales over six decades, ratios from 1e-3 to 1e3
            sa, sb, sc = (np.float32(10.0 ** rng.uniform(-4, 2)) for _ in range(3))
        za, zb, zc = (int(v) for v in rng.integers(lo, hi + 1, 3))
        t = [Tensor(n, (64,), np.dtype(dtype).name, float(s), z)
             for n, s, z in (("a", sa, za), ("b", sb, zb), ("c", sc, zc))]
        clamp = (lo, hi) if trial % 5 else (max(lo, zc), hi)     # a fused ReLU now and then
        a, b = (rng.integers(lo, hi + 1, 64) for _ in range(2))
        ra, rb, fixed = qlinear_add_constants(*t)
        cases.append(qlinear_add(a, b, *t, clamp))
        lines.append(f"64 {int(dtype == np.uint8)} {clamp[0]} {clamp[1]} {float(ra).hex()} "
                     f"{float(rb).hex()} {float(fixed).hex()} "
                     + " ".join(f"{x & 0xFF} {y & 0xFF}" for x, y in zip(a, b)))
    done = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True,
                          text=True, check=True)
    got = [np.array(line.split(), np.int64) for line in done.stdout.splitlines()]
    assert len(got) == len(cases)
    for i, (want, raw) in enumerate(zip(cases, got)):
        lo = 0 if i % 2 else -128
        values = raw if lo == 0 else np.where(raw > 127, raw - 256, raw)
        np.testing.assert_array_equal(values, want, err_msg=f"case {i}")

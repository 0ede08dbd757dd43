"""runtime/weight_layout.py: the compile-time layouts of conv1d/gemm constants (the C kernels'
bit-exactness in both layouts is tested in test_kernels.py; here the layout's own rules)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runtime import weight_layout as wl  # noqa: E402
from runtime.reference.kernels import round_shift  # noqa: E402


def test_blocks_put_channels_innermost_with_a_narrow_last_block():
    c_out, kernel, cg, block = 19, 3, 5, 8
    w = np.arange(c_out * kernel * cg, dtype=np.int64).reshape(c_out, kernel, cg)
    packed = wl.block_weights(w, c_out, block)
    assert packed.size == w.size and packed.dtype == w.dtype
    for co in range(c_out):
        first = co - co % block
        width = min(block, c_out - first)
        for k in range(kernel):
            for i in range(cg):
                at = first * kernel * cg + (k * cg + i) * width + (co - first)
                assert packed[at] == w[co, k, i]
    assert np.array_equal(wl.block_weights(w, c_out, 1), w.reshape(-1))


def test_dense_layers_get_blocks_grouped_ones_keep_the_logical_layout():
    arrays = dict(w=np.ones((4, 3, 2), np.int8), bias=np.zeros(4, np.int32),
                  shift=np.full(4, 5, np.int8))
    dense = dict(t_in=5, c_in=2, c_out=4, kernel=3, groups=1)
    grouped = dict(dense, c_in=4, groups=2)
    assert wl.choose("conv1d", dense, arrays, 8, "half_even") == {"wblock": wl.DENSE_BLOCK,
                                                                  "rq_bias": 1}
    assert wl.choose("conv1d", grouped, arrays, 8, "half_even")["wblock"] == 1
    gemm = dict(m=2, k=6, n=4)
    assert wl.choose("gemm", gemm, dict(arrays, w=np.ones((4, 6), np.int8)), 8,
                     "half_up")["wblock"] == wl.DENSE_BLOCK


@pytest.mark.parametrize("mode", ["half_even", "half_up"])
def test_fold_only_where_the_accumulator_has_room(mode):
    w = np.full((1, 4), 127, np.int8)
    shift = np.array([9], np.int8)
    c = int(wl.rounding_constant(shift, mode)[0])
    room = wl.INT32_MAX - 4 * 127 * 128 - 1 - c  # the largest bias that still folds
    assert wl.can_fold(np.array([room], np.int32), shift, w, 1, 8, mode)
    assert not wl.can_fold(np.array([room + 1], np.int32), shift, w, 1, 8, mode)
    assert not wl.can_fold(np.array([0], np.int64), shift, w, 1, 8, mode)  # int64 accumulator
    for s in (0, -3, 32):
        assert not wl.can_fold(np.array([0], np.int32), np.array([s]), w, 1, 8, mode)


def folded_output(t: np.ndarray, s: int, mode: str) -> np.ndarray:
    """runtime/c/rill_common.h rill_rq_folded before the clamp, in Python."""
    q = t >> s
    return (t + (q & 1)) >> s if mode == "half_even" else q


@pytest.mark.parametrize("mode", ["half_even", "half_up"])
def test_folded_rounding_is_exact_at_and_around_ties(mode):
    for s in (1, 2, 3, 7, 16, 30, 31):
        half = 1 << (s - 1)
        q = np.arange(-6, 7, dtype=np.int64)
        acc = np.concatenate([q * (1 << s) + half + d for d in (-2, -1, 0, 1, 2)])
        acc = acc[np.abs(acc) < 2**31 - (1 << s)]
        t = acc + int(wl.rounding_constant(np.array([s]), mode)[0])
        assert np.array_equal(folded_output(t, s, mode), round_shift(acc, s, mode)), s


@pytest.mark.parametrize("mode", ["half_even", "half_up"])
def test_c_arrays_fold_and_block(mode):
    rng = np.random.default_rng(3)
    params = dict(m=3, k=5, n=11)
    arrays = dict(w=rng.integers(-128, 128, (11, 5)).astype(np.int8),
                  bias=rng.integers(-500, 500, 11).astype(np.int32),
                  shift=rng.integers(1, 12, 11).astype(np.int8))
    c_params, c_arr = wl.c_step("gemm", params, arrays, 8, mode)
    assert c_params == {**params, "wblock": wl.DENSE_BLOCK, "rq_bias": 1}
    assert np.array_equal(c_arr["w"], wl.block_weights(arrays["w"], 11, wl.DENSE_BLOCK))
    assert c_arr["bias"].dtype == np.int32
    assert np.array_equal(c_arr["bias"] - arrays["bias"],
                          wl.rounding_constant(arrays["shift"], mode))
    assert c_arr["shift"] is arrays["shift"]

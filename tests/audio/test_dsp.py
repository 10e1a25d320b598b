"""DSP: the cap is never exceeded, gain changes are ramps, fades reach silence, int16 conversion clips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from firmware.audio.dsp import MIN_RAMP_S, Chain, Limiter, Ramp, db_to_lin, to_int16

RATE = 48000

signals = arrays(
    np.float32,
    st.integers(1, 4000),
    elements=st.floats(-8.0, 8.0, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0]),
)


def split(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    out, pos = [], 0
    for n in sizes:
        if pos >= len(x):
            break
        out.append(x[pos : pos + n].copy())
        pos += n
    if pos < len(x):
        out.append(x[pos:].copy())
    return out


@settings(max_examples=300, deadline=None)
@given(
    signal=signals,
    gain_db=st.floats(-60, 40),
    new_gain_db=st.floats(-60, 40),
    cap_db=st.floats(-60, 0),
    new_cap_db=st.floats(-60, 0),
    sizes=st.lists(st.integers(1, 1200), min_size=1, max_size=8),
    with_bound=st.booleans(),
    fade_in=st.booleans(),
)
def test_no_sample_ever_exceeds_the_cap(
    signal, gain_db, new_gain_db, cap_db, new_cap_db, sizes, with_bound, fade_in
):
    chain = Chain(RATE, gain_db, cap_db, fade_in=fade_in)
    blocks = split(signal, sizes)
    for i, block in enumerate(blocks):
        if i == len(blocks) // 2:
            # The window's cap changes mid-programme (SetGain): still never above the cap in force.
            chain.set_gain(new_gain_db, new_cap_db)
            cap_db = new_cap_db
        # A file source passes the bound of its decoded chunk (>= the block's true peak, inf with NaNs).
        true_peak = float(np.max(np.abs(block)))
        bound = (true_peak if np.isfinite(true_peak) else np.inf) if with_bound else None
        out = chain.process(block, bound)
        assert out.dtype == np.int16
        assert np.max(np.abs(out.astype(np.int32))) <= db_to_lin(cap_db) * 32767


@settings(max_examples=200, deadline=None)
@given(
    g0=st.floats(0, 10),
    g1=st.floats(0, 10),
    ramp_s=st.floats(MIN_RAMP_S, 0.2),
    sizes=st.lists(st.integers(1, 2000), min_size=1, max_size=10),
)
def test_a_gain_ramp_never_jumps_more_than_its_slope_per_sample(g0, g1, ramp_s, sizes):
    ramp = Ramp(RATE, g0)
    ramp.to(g1, ramp_s)
    ones = np.ones(sum(sizes) + 1, dtype=np.float32)
    env = np.concatenate([(ramp.apply(b), b)[1] for b in split(ones, sizes)])
    env = np.concatenate([[g0], env])
    bound = abs(g1 - g0) / round(ramp_s * RATE)
    assert np.max(np.abs(np.diff(env))) <= bound * 1.001 + 1e-6
    if len(env) > round(ramp_s * RATE) + 1:
        assert env[-1] == np.float32(g1)


def test_a_gain_change_is_spread_over_at_least_10_ms():
    chain = Chain(RATE, -20.0, 0.0, fade_in=False)
    chain.set_gain(0.0)
    out = chain.process(np.full(960, 0.5, dtype=np.float32)) / 32767
    # 10 ms = 480 frames: half-way through, the gain is half-way (linear ramp), not already at the target.
    assert 0.5 * db_to_lin(-20) < out[239] < 0.5 * 0.6
    assert out[479] == pytest.approx(0.5, abs=1e-4)


def test_new_items_fade_in_instead_of_starting_mid_waveform():
    chain = Chain(RATE, 0.0, 0.0)
    out = chain.process(np.full(960, 0.8, dtype=np.float32)) / 32767
    assert out[0] < 0.01 and out[-1] == pytest.approx(0.8, abs=1e-4)


def test_fade_out_reaches_silence_in_the_fade_time_and_stays_there():
    chain = Chain(RATE, 0.0, 0.0, fade_in=False)
    chain.fade_out(0.03)
    blocks = [chain.process(np.full(960, 0.5, dtype=np.float32)) for _ in range(3)]
    assert blocks[0][0] > 16000 * 0.95
    # 30 ms = 1440 frames: the fade ends 480 frames into the second block.
    assert 0 < blocks[1][470] < 16000 * 0.05
    assert not np.any(blocks[1][480:])
    assert chain.faded_out
    assert not np.any(blocks[2])


def test_limiter_reduces_a_loud_passage_without_clipping_it_flat():
    lim = Limiter(RATE, -6.0)
    loud = (0.9 * np.sin(2 * np.pi * 440 * np.arange(4800) / RATE)).astype(np.float32)
    out = [b.copy() for b in split(loud, [960] * 5)]
    for b in out:
        lim.apply(b)
    later = np.concatenate(out[1:])
    # After the attack, the envelope (not the safety clip) does the work: the sine keeps its shape.
    assert np.max(np.abs(later)) <= db_to_lin(-6)
    ratio = later / loud[960:]
    steady = np.abs(loud[960:]) > 0.05
    assert np.ptp(ratio[steady]) < 1e-3  # one gain for the whole passage: the sine keeps its shape
    assert abs(ratio[steady][0] - db_to_lin(-6) / 0.9) < 0.01


def test_int16_conversion_clips_instead_of_wrapping():
    out = to_int16(np.array([2.0, -2.0, 1.0, -1.0, 0.5], dtype=np.float32))
    assert out.tolist() == [32767, -32767, 32767, -32767, 16383]

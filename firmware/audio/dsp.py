"""Block DSP for the player: ramped gain, fades, a limiter that guarantees the cap, int16 conversion.

Everything works on 1-D float32 numpy blocks, in place where numpy allows, and keeps its state between blocks
so a ramp or a fade may span several blocks. Ramps are linear in amplitude: with a ramp of >= 10 ms the gain
never moves by more than |g1 - g0| / ramp_frames between two samples, which is what keeps changes click-free.
"""

from __future__ import annotations

import math

import numpy as np

MIN_RAMP_S = 0.010
INT16_SCALE = 32767.0


def db_to_lin(db: float) -> float:
    return 0.0 if db == -math.inf else float(10.0 ** (db / 20.0))


def lin_to_db(lin: float) -> float:
    return -math.inf if lin <= 0.0 else 20.0 * math.log10(lin)


class Ramp:
    """A multiplier that moves linearly to a target over a duration, across block boundaries.

    Used for the gain (target = the new gain, >= 10 ms) and for fades (target 0).
    """

    def __init__(self, rate: int, value: float = 1.0):
        self.rate = rate
        self.value = float(value)
        self.target = float(value)
        self._step = 0.0
        self._left = 0  # frames until the target is reached

    @property
    def settled(self) -> bool:
        return self._left == 0

    def to(self, target: float, duration_s: float) -> None:
        frames = max(1, round(duration_s * self.rate))
        self.target = float(target)
        self._left = frames
        self._step = (self.target - self.value) / frames
        if self.target == self.value:
            self._left = 0

    def jump(self, value: float) -> None:
        self.value = self.target = float(value)
        self._left = 0

    def apply(self, block: np.ndarray) -> None:
        """Multiply `block` in place by the ramp, advancing it by len(block) frames."""
        n = len(block)
        if self._left == 0:
            if self.value != 1.0:
                block *= np.float32(self.value)
            return
        k = min(n, self._left)
        env = self.value + self._step * np.arange(1, k + 1, dtype=np.float64)
        block[:k] *= env.astype(np.float32)
        self._left -= k
        if self._left == 0:
            self.value = self.target
        else:
            self.value = float(env[-1])
        if k < n and self.value != 1.0:
            block[k:] *= np.float32(self.value)


class Limiter:
    """Keeps every sample at or below `cap_db` dBFS (relative to `full_scale`: 1.0 for float, 32767 when the
    chain works in int16 units).

    A gain-reduction envelope per block (fast attack over `attack_s`, slow linear release) does the audible
    work; a final hard clip at the cap is the guarantee, so the promise "never above the cap" does not rest on
    the envelope's arithmetic. NaN/inf from a broken decoder are replaced rather than passed on.
    """

    def __init__(
        self,
        rate: int,
        cap_db: float = 0.0,
        *,
        attack_s: float = 0.001,
        release_s: float = 0.25,
        full_scale: float = 1.0,
    ):
        self.rate = rate
        self.full_scale = full_scale
        self._attack = max(1, round(attack_s * rate))
        # Release: the reduction recovers by at most a factor 1 (full scale) per release_s, linearly.
        self._release_per_frame = 1.0 / max(1.0, release_s * rate)
        self.gain = 1.0  # current gain reduction (1 = none)
        self.set_cap(cap_db)

    def set_cap(self, cap_db: float) -> None:
        cap_db = min(0.0, float(cap_db))
        self.cap_db = cap_db
        exact = db_to_lin(cap_db) * self.full_scale
        cap = np.float32(exact)
        # float32 rounding could put the cap a hair above the true one; clip at the float32 just below.
        if float(cap) > exact:
            cap = np.nextafter(cap, np.float32(0))
        self.cap = cap
        self._cap_f = float(cap)
        self._safe = self._cap_f * (1.0 - 1e-6)

    def apply(self, block: np.ndarray) -> None:
        if len(block) == 0:
            return
        # max and -min rather than max(abs): no temporary array, two cheap reductions.
        peak = max(float(block.max()), -float(block.min()))
        cap = self._cap_f
        if peak <= cap and self.gain == 1.0:
            return  # the common case: nothing to do, every sample is already within the cap
        if not math.isfinite(peak):
            np.nan_to_num(block, copy=False, nan=0.0, posinf=cap, neginf=-cap)
            peak = max(float(block.max()), -float(block.min()))
        need = 1.0 if peak <= cap else cap / peak
        g0 = self.gain
        if need < g0:
            k = min(len(block), self._attack)
            env = np.empty(len(block), dtype=np.float32)
            env[:k] = np.linspace(g0, need, k + 1, dtype=np.float32)[1:]
            env[k:] = need
            block *= env
            self.gain = need
        elif g0 < 1.0:
            g1 = min(need, 1.0, g0 + self._release_per_frame * len(block))
            block *= np.linspace(g0, g1, len(block) + 1, dtype=np.float32)[1:]
            self.gain = g1
        # The guarantee (ufuncs directly: np.clip's Python wrapper costs more than the clipping).
        np.minimum(block, self.cap, out=block)
        np.maximum(block, -self.cap, out=block)


def to_int16(block: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16, clipping anything outside.

    Truncation toward zero (astype) rather than rounding: it never increases a magnitude, so a block limited
    to the cap in float stays at or below the cap in int16.
    """
    scaled = np.multiply(block, np.float32(INT16_SCALE), dtype=np.float32)
    np.clip(scaled, -INT16_SCALE, INT16_SCALE, out=scaled)
    return scaled.astype(np.int16)


class Chain:
    """Gain ramp -> fade -> limiter for one playing item; `process()` returns the int16 block for the sink.

    Works in int16 units after the gain (the limiter's cap is scaled to 32767), so the steady state - gain
    and fade settled, limiter idle - is one multiply, two reductions and the int16 cast: the player runs this
    50 times a second for hours on a Pi.
    """

    def __init__(
        self, rate: int, gain_db: float, cap_db: float, *, ramp_s: float = MIN_RAMP_S, fade_in: bool = True
    ):
        self.rate = rate
        self.ramp_s = max(MIN_RAMP_S, ramp_s)
        self.gain_db = gain_db
        self.gain = Ramp(rate, 0.0 if fade_in else db_to_lin(gain_db))
        if fade_in:
            # Start from silence: a source that begins mid-waveform (joined in progress) must not click.
            self.gain.to(db_to_lin(gain_db), self.ramp_s)
        self.fade = Ramp(rate, 1.0)
        self.limiter = Limiter(rate, cap_db, full_scale=INT16_SCALE)

    @property
    def cap_db(self) -> float:
        return self.limiter.cap_db

    def set_gain(self, gain_db: float, cap_db: float | None = None) -> None:
        self.gain_db = gain_db
        self.gain.to(db_to_lin(gain_db), self.ramp_s)
        if cap_db is not None:
            self.limiter.set_cap(cap_db)

    def fade_out(self, fade_s: float) -> None:
        self.fade.to(0.0, max(fade_s, 1.0 / self.rate))

    @property
    def faded_out(self) -> bool:
        return self.fade.settled and self.fade.value == 0.0

    def process(self, block: np.ndarray, peak_bound: float | None = None) -> np.ndarray:
        """Process `block` (float32, modified in place) and return it as int16.

        `peak_bound`, when the source knows one (an upper bound of |sample| in this block), saves the peak
        search in the steady state.
        """
        gain, fade, limiter = self.gain, self.fade, self.limiter
        # Attributes, not properties, on this path: it runs 50 times a second for hours.
        if gain._left == 0 and fade._left == 0 and limiter.gain == 1.0:
            scale = gain.value * fade.value * INT16_SCALE
            peak = peak_bound if peak_bound is not None else max(float(block.max()), -float(block.min()))
            # `_safe` is the cap less a margin for float32 rounding of each product, so the cast below can
            # never exceed the cap. False for NaN: the full path handles it.
            if peak * scale <= limiter._safe:
                # In place then cast: measured cheaper than one multiply with an int16 output (numpy buffers
                # casting ufunc loops). Truncation toward zero never increases a magnitude.
                block *= scale
                return block.astype(np.int16)
        gain.apply(block)
        fade.apply(block)
        np.multiply(block, np.float32(INT16_SCALE), out=block)
        limiter.apply(block)
        # The limiter bounds every sample by the cap (<= 32767): a plain cast, truncating toward zero.
        return block.astype(np.int16)

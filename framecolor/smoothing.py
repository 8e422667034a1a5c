"""Temporal smoothing of predicted chroma: steady colors without smeared motion.

A per-frame colorizer guesses every frame afresh, so a static wall can drift
between hues from one frame to the next (flicker). We replace each pixel's
predicted ab by a weighted mean over neighbouring frames, with weights that
decay exponentially in both time directions. Computed as a normalized
recursive filter (one causal and one anticausal pass), this needs only a
bounded look-ahead, so it streams.

The look-ahead is a fixed number of frames, lookahead_frames(strength): the
distance at which a frame's weight has fallen below LOOKAHEAD_WEIGHT. It
must not be "the next batch": the anticausal half was then cut off after B
frames, so colors changed with --batch-size (at strength 0.9, -b 2 and
-b 32 differed by up to 15 chroma codes) and with a frame's place in its
batch. The causal pass is carried across blocks exactly, so with a fixed
look-ahead the result depends on the strength alone, not on how the frames
are cut into blocks.

The weight linking frame t-1 to frame t is, per pixel,

    w_t = strength * exp(-((L_t - L_{t-1}) / SIGMA_L)^2)

and 0 across a scene cut. Weights multiply along the chain, so the average
stops wherever the luminance changes (a moving edge, a new shot) and colors
of one object are not dragged onto the next. L is compared at the render
size, where the antialiased downscale has already averaged away most of the
codec's noise.

Scene cut: the total-variation distance (half the L1 distance, in [0, 1])
between the HIST_BINS-bin lightness histograms of consecutive frames exceeds
CUT_THRESHOLD. Measured on the sample clips at render size 224: within a
shot the distance has a median of 0.005-0.015 and a maximum of 0.12 (a fast
pan in bikes.mp4); the five real cuts in bikes.mp4 measure 0.22-0.72. A cut
missed still mostly stops at the per-pixel L weights; a false one only
restarts the average, so the threshold sits low in that gap: 0.15.

Everything here is jax.numpy and runs inside the apply pipeline's jitted
step, on the device, at the render size.
"""

from __future__ import annotations

import collections
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

HIST_BINS = 32
CUT_THRESHOLD = 0.15
# L units (0..100). Codec noise moves L by ~1-2 (weight ~0.97); an edge moving
# across a pixel changes it by 10-50 (weight ~0.2 down to 0).
SIGMA_L = 6.0
# The look-ahead ends where a frame's weight would be below this (strength**K):
# what lies beyond moves the mean by at most about this fraction of a color
# difference, well under a chroma code.
LOOKAHEAD_WEIGHT = 1e-3
# ...but at most this many frames (5 s at 25 fps), which a strength of 0.947
# reaches: the queued batches hold this many frames (their luma too, at full
# size), and the backward half of a stronger filter is cut off here.
MAX_LOOKAHEAD = 128


class Track(NamedTuple):
    """Per-frame values the filter needs for a block of T frames (render size)."""

    ab: jax.Array  # (T, h, w, 2) predicted ab (Lab units)
    lightness: jax.Array  # (T, h, w) L (0..100)
    hist: jax.Array  # (T, HIST_BINS) normalized lightness histograms
    valid: jax.Array  # (T,) bool: False for padding frames


class State(NamedTuple):
    """What the causal pass carries from one block to the next."""

    num: jax.Array  # (h, w, 2) running weighted sum of ab
    den: jax.Array  # (h, w) running sum of weights
    lightness: jax.Array  # (h, w) the last frame's L
    hist: jax.Array  # (HIST_BINS,)
    valid: jax.Array  # () bool: is there a previous frame at all


def histograms(lightness) -> jax.Array:
    """(T, h, w) L in 0..100 -> (T, HIST_BINS) histograms that sum to 1."""
    bins = jnp.clip((lightness * (HIST_BINS / 100.0)).astype(jnp.int32), 0, HIST_BINS - 1)
    counts = jax.vmap(lambda b: jnp.bincount(b.ravel(), length=HIST_BINS))(bins)
    return counts.astype(jnp.float32) / bins[0].size


def initial_state(height: int, width: int) -> State:
    return State(
        num=jnp.zeros((height, width, 2), jnp.float32),
        den=jnp.zeros((height, width), jnp.float32),
        lightness=jnp.zeros((height, width), jnp.float32),
        hist=jnp.zeros((HIST_BINS,), jnp.float32),
        valid=jnp.zeros((), bool),
    )


def cut_distance(hist_a, hist_b) -> jax.Array:
    """Total-variation distance between histograms (last axis), in [0, 1]."""
    return 0.5 * jnp.abs(hist_a - hist_b).sum(-1)


def _links(prev_l, prev_hist, prev_valid, track: Track, strength) -> jax.Array:
    """(T, h, w) weights w_t linking frame t-1 (prev_* for t = 0) to frame t."""
    prev_l = jnp.concatenate([prev_l[None], track.lightness[:-1]])
    prev_hist = jnp.concatenate([prev_hist[None], track.hist[:-1]])
    prev_valid = jnp.concatenate([prev_valid[None], track.valid[:-1]])
    same_shot = (cut_distance(prev_hist, track.hist) <= CUT_THRESHOLD) & prev_valid & track.valid
    similar = jnp.exp(-jnp.square((track.lightness - prev_l) / SIGMA_L))
    return strength * similar * same_shot[:, None, None]


def _accumulate(carry, x):
    """One step of the recursion S_t = ab_t + w S_{t-1} (sums of ab and of weights)."""
    num, den = carry
    ab, w = x
    return ab + w[..., None] * num, 1.0 + w * den


def lookahead_frames(strength: float) -> int:
    """How many frames after a block its smoothing looks at: the fewest
    with strength**K <= LOOKAHEAD_WEIGHT, at most MAX_LOOKAHEAD; 0 for 0."""
    frames, weight = 0, 1.0
    while strength > 0 and weight > LOOKAHEAD_WEIGHT and frames < MAX_LOOKAHEAD:
        weight *= strength
        frames += 1
    return frames


class Lookahead:
    """Blocks held until the `batches` blocks after each have come, its look-ahead.

    ``push(block)`` returns the (block, [the blocks after it]) that are
    ready, oldest first; ``drain()`` the rest at the end, each with the
    blocks that came after it, fewer than `batches` (the caller pads them as
    past the end). The video pipeline pulls its blocks and a photo sequence
    pushes them; both smooth by this one queue.
    """

    def __init__(self, batches: int):
        self.batches = batches
        self._held: collections.deque = collections.deque()

    def push(self, block) -> list[tuple]:
        self._held.append(block)
        return [self._first()] if len(self._held) > self.batches else []

    def drain(self) -> list[tuple]:
        return [self._first() for _ in range(len(self._held))]

    def _first(self) -> tuple:
        current, *after = self._held
        self._held.popleft()
        return current, after


def _first_frames(tracks: Sequence[Track], count: int | None) -> list[Track]:
    """The first `count` frames (None: all) of `tracks`, still one Track per block."""
    kept = []
    for track in tracks:
        if count is not None:
            if count <= 0:
                break
            if count < track.valid.shape[0]:
                track = Track(*(x[:count] for x in track))
            count -= track.valid.shape[0]
        kept.append(track)
    return kept


def _ahead_sums(block: Track, ahead: Sequence[Track], strength):
    """The anticausal sums (of ab, of weights) at the first look-ahead frame,
    and the weight linking `block`'s last frame to it (0 with no look-ahead).

    One scan per block of `ahead`, from the last: the blocks are never
    concatenated, which would copy every look-ahead frame once per batch.
    """
    hw = block.lightness.shape[1:]
    carry = (jnp.zeros((*hw, 2), jnp.float32), jnp.zeros(hw, jnp.float32))
    into_next = jnp.zeros(hw, jnp.float32)  # nothing is seen past the look-ahead
    for before, track in reversed(list(zip([block, *ahead[:-1]], ahead))):
        w = _links(before.lightness[-1], before.hist[-1], before.valid[-1], track, strength)
        w_next = jnp.concatenate([w[1:], into_next[None]])
        carry, _ = jax.lax.scan(lambda c, x: (_accumulate(c, x), None), carry, (track.ab, w_next), reverse=True)
        into_next = w[0]
    return carry, into_next


def smooth(state: State, block: Track, ahead: Track | Sequence[Track], strength,
           lookahead: int | None = None) -> tuple[State, jax.Array]:
    """Smooth the ab of `block`, looking ahead into the frames that follow it.

    `state` carries the causal pass over all earlier frames. `ahead` holds
    the frames that follow, as one Track or as the Tracks of the blocks
    that follow, in order; its first `lookahead` frames (None: all of them)
    bound the anticausal pass, so pass lookahead_frames(strength) of them
    for a result that does not depend on the blocks' length. Frames past
    the video's end are passed with valid=False. Returns the new state and
    the smoothed ab of `block`. strength in [0, 1): 0 returns the ab unchanged.
    """
    ahead = _first_frames([ahead] if isinstance(ahead, Track) else ahead, lookahead)
    w = _links(state.lightness, state.hist, state.valid, block, strength)  # into each frame of block

    def causal(carry, x):
        carry = _accumulate(carry, x)
        return carry, carry

    (num, den), (f_num, f_den) = jax.lax.scan(causal, (state.num, state.den), (block.ab, w))

    # Anticausal: G_t = ab_t + w_{t+1} G_{t+1}. Over `ahead` only its value at
    # the first frame is needed; over `block` each G_t is combined with the
    # causal sum at once, so neither pass writes arrays it would only read back.
    g_ahead, w_ahead = _ahead_sums(block, ahead, strength)
    w_next = jnp.concatenate([w[1:], w_ahead[None]])

    def anticausal(carry, x):
        ab, w_t, f_num_t, f_den_t = x
        carry = _accumulate(carry, (ab, w_t))
        # Both passes count frame t itself once: subtract it once.
        return carry, (f_num_t + carry[0] - ab) / (f_den_t + carry[1] - 1.0)[..., None]

    _, smoothed = jax.lax.scan(anticausal, g_ahead, (block.ab, w_next, f_num, f_den), reverse=True)
    last = State(num, den, block.lightness[-1], block.hist[-1], block.valid[-1])
    return last, smoothed

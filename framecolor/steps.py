"""The pure jitted train and eval steps, and what they are made of: the
optimizer, the batch on the device, the losses, the state and its mesh.

Everything per pixel happens on the device inside the jitted step: the random
crop and flip of the stored uint8 frames, RGB -> Lab (framecolor.color), the
model, the loss and the optimizer. The host only hands over batch indices,
so the step is limited by the device, not by Python or skimage.

Data parallelism: the batch is sharded along a ``data`` mesh axis over all
devices and the state is replicated; ``jax.jit`` inserts the gradient
all-reduce (what ``pmap`` + ``psum`` did by hand). BatchNorm statistics are
over the whole global batch, so N devices compute what one device would.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from framecolor import abbins, color, dataset
from framecolor.errors import TrainingError
from framecolor.models.colorizer import BACKBONE, ModelConfig, build_colorizer, init_variables

LOSSES = ("mse", "huber", "l1")
# Huber's quadratic zone, in normalized units (ab/110 or RGB in [0, 1]):
# errors above ~0.1 (11 ab units) are treated linearly, the usual robust choice.
HUBER_DELTA = 0.1


@flax.struct.dataclass
class TrainState:
    params: Any
    batch_stats: Any
    opt_state: Any
    step: jax.Array  # int32 scalar: global step, also the checkpoint number
    rng: jax.Array  # raw uint32[2] key; step keys are fold_in(rng, step)

    @property
    def variables(self) -> dict:
        return {"params": self.params, "batch_stats": self.batch_stats}


def make_optimizer(lr: float, clip_norm: float, frozen=frozenset(), hold_frozen: bool = False
                   ) -> optax.GradientTransformation:
    """Adam after clipping the global gradient norm.

    ``frozen`` names the top-level parameter collections that
    --freeze-backbone-epochs holds still at first: they get an Adam of their
    own (moments and step count), and ``hold_frozen`` (the frozen epochs'
    optimizer) leaves that Adam's state as it was, so on unfreezing it starts
    as a fresh Adam would. Sharing one Adam, their moments stayed at zero
    while its step count went on, and its bias correction, made for moments
    that had seen every step, moved them by up to ~6x the learning rate after
    unfreezing. Without ``frozen`` the state is the one-Adam chain that the
    checkpoints of runs without a freeze have always held.
    """
    # inject_hyperparams puts the LR into the optimizer state: the plateau
    # callback changes it without recompiling the step.
    clip = optax.clip_by_global_norm(clip_norm)
    if not frozen:
        return optax.chain(clip, optax.inject_hyperparams(optax.adam)(learning_rate=lr))

    def labels(params):  # a prefix of the parameters' tree: one label per top-level collection
        return {k: "frozen" if k in frozen else "trained" for k in params}

    def split_adam(learning_rate):
        adam = optax.adam(learning_rate)
        return optax.multi_transform({"frozen": _held(adam) if hold_frozen else adam, "trained": adam}, labels)

    # One clip over both parts, as without the split: the frozen epochs' zero
    # gradients leave the decoder's clipping as it was.
    return optax.chain(clip, optax.inject_hyperparams(split_adam)(learning_rate=lr))


def _held(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` that moves nothing and keeps its state: the same state, so one checkpoint serves both."""
    return optax.GradientTransformation(
        tx.init, lambda updates, state, params=None: (jax.tree.map(jnp.zeros_like, updates), state)
    )


def get_lr(state: TrainState) -> float:
    return float(state.opt_state[1].hyperparams["learning_rate"])


def set_lr(state: TrainState, lr: float) -> TrainState:
    inner = state.opt_state[1]
    old = inner.hyperparams["learning_rate"]
    new = jax.device_put(jnp.asarray(lr, old.dtype), old.sharding)
    inner = inner._replace(hyperparams={**inner.hyperparams, "learning_rate": new})
    return state.replace(opt_state=(state.opt_state[0], inner) + tuple(state.opt_state[2:]))


def backbone_keys(params) -> frozenset:
    """Top-level parameter collections of the pretrained backbone (frozen with --freeze-backbone-epochs)."""
    return frozenset({BACKBONE}) & set(params)


def prepare_batch(batch, rng, size: int, mode: str):
    """uint8 (B, S, S, 3) -> (l_norm (B, size, size, 1), target) on device.

    With ``rng`` a random crop and horizontal flip per image; without, the
    center crop (validation). The target is ab_norm (mode lab) or RGB in [0, 1].
    """
    b, s = batch.shape[0], batch.shape[1]
    if rng is None:
        o = (s - size) // 2
        crops = batch[:, o : o + size, o : o + size]
    else:
        k_y, k_x, k_f = jax.random.split(rng, 3)
        ys = jax.random.randint(k_y, (b,), 0, s - size + 1)
        xs = jax.random.randint(k_x, (b,), 0, s - size + 1)
        crop = lambda img, y, x: jax.lax.dynamic_slice(img, (y, x, 0), (size, size, 3))
        crops = jax.vmap(crop)(batch, ys, xs)
        flip = jax.random.bernoulli(k_f, 0.5, (b,))
        crops = jnp.where(flip[:, None, None, None], crops[:, :, ::-1], crops)
    rgb = crops.astype(jnp.float32) / 255.0
    lab = color.rgb_to_lab(rgb)
    l_norm = color.normalize_l(lab[..., :1])
    target = color.normalize_ab(lab[..., 1:]) if mode == "lab" else rgb
    return l_norm, target


def per_example_loss(pred, target, kind: str):
    """Mean loss per image (B,), in float32 whatever the compute dtype."""
    pred, target = pred.astype(jnp.float32), target.astype(jnp.float32)
    if kind == "mse":
        err = jnp.square(pred - target)
    elif kind == "l1":
        err = jnp.abs(pred - target)
    elif kind == "huber":
        err = optax.huber_loss(pred, target, delta=HUBER_DELTA)
    else:
        raise TrainingError(f"loss must be one of {', '.join(LOSSES)}, not {kind!r}")
    return err.reshape(err.shape[0], -1).mean(axis=1)


def to_rgb(l_norm, out, mode: str):
    """Model output -> RGB in [0, 1] for previews."""
    if mode == "rgb":
        return out
    lab = jnp.concatenate([color.denormalize_l(l_norm), color.denormalize_ab(out)], axis=-1)
    return color.lab_to_rgb(lab)


def _bins_loss(model, variables, l_norm, target, bin_weights, **apply_kw):
    """Rebalanced cross-entropy of the bins head against the true ab at the logits' stride."""
    logits = model.apply(variables, l_norm, logits=True, **apply_kw)
    logits, updates = logits if isinstance(logits, tuple) else (logits, {})
    ab = color.denormalize_ab(target)
    ab = jax.image.resize(ab, (*ab.shape[:1], *logits.shape[1:3], 2), "linear")  # antialiased: a local mean
    centers = jnp.asarray(abbins.bin_centers())
    return abbins.loss(logits, ab, jnp.asarray(bin_weights, jnp.float32), centers), updates


def make_steps(model, tx, *, size: int, mode: str, loss: str, mesh: Mesh, frozen=frozenset(), frozen_tx=None,
               bin_weights=None):
    """The jitted ``train_step(state, batch, freeze)`` and ``eval_step(state, batch, mask)``.

    ``freeze`` (static: pass a Python bool; a numpy bool compiles apart) holds
    the ``frozen`` top-level parameter collections (the backbone's,
    ``backbone_keys``) still: their weights, BatchNorm statistics and
    optimizer state stay as they were (``frozen_tx``: ``tx`` made with
    ``hold_frozen``), and the backbone runs on its stored statistics, as at
    inference, so that the decoder learns on the features it will be given.
    A static flag compiles a second step only for a run that freezes; a
    traced one would run the backbone both ways. ``tx`` and the state's
    optimizer must be made with the same ``frozen`` (make_optimizer, init_state).
    """
    replicated = NamedSharding(mesh, P())
    sharded = NamedSharding(mesh, P("data"))
    bins = model.config.head == "bins"
    if bins and bin_weights is None:
        raise TrainingError("the bins head needs class weights from the training data")
    if frozen and frozen_tx is None:
        raise TrainingError("freezing needs the optimizer that holds the frozen collections (frozen_tx)")

    def train_step(state: TrainState, batch, freeze):
        optimizer = _optimizer_for_state(frozen_tx if freeze and frozen else tx, state)
        rng = jax.random.fold_in(state.rng, state.step)
        l_norm, target = prepare_batch(batch, rng, size, mode)
        # Held weights are closed over, not differentiated: no gradient is
        # computed for them (for the unet decoder, none through the backbone at all).
        held = {k: v for k, v in state.params.items() if freeze and k in frozen}
        trained = {k: v for k, v in state.params.items() if k not in held}

        def loss_fn(trained_params):
            variables = {"params": {**held, **trained_params}, "batch_stats": state.batch_stats}
            apply_kw = {"train": True, "frozen_backbone": bool(held), "mutable": ["batch_stats"]}
            if bins:
                losses, updates = _bins_loss(model, variables, l_norm, target, bin_weights, **apply_kw)
            else:
                out, updates = model.apply(variables, l_norm, **apply_kw)
                losses = per_example_loss(out, target, loss)
            return losses.mean(), updates.get("batch_stats", state.batch_stats)

        (value, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(trained)
        grads = {k: grads[k] if k in grads else jax.tree.map(jnp.zeros_like, v) for k, v in state.params.items()}
        batch_stats = {k: state.batch_stats[k] if k in held else batch_stats[k] for k in state.batch_stats}
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state, step=state.step + 1)
        grad_norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
        return new, {"loss": value, "grad_norm": grad_norm}

    def eval_step(state: TrainState, batch, mask):
        l_norm, target = prepare_batch(batch, None, size, mode)
        out = model.apply(state.variables, l_norm, train=False)
        if bins:
            losses, _ = _bins_loss(model, state.variables, l_norm, target, bin_weights, train=False)
        else:
            losses = per_example_loss(out, target, loss)
        to_u8 = lambda x: jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)
        gray = color.lab_to_rgb(jnp.concatenate([color.denormalize_l(l_norm), jnp.zeros_like(out[..., :2])], -1))
        o = (batch.shape[1] - size) // 2
        previews = {
            "gray": to_u8(gray),
            "pred": to_u8(to_rgb(l_norm, out, mode)),
            "truth": batch[:, o : o + size, o : o + size],
        }
        return {"loss_sum": jnp.sum(losses * mask), "count": jnp.sum(mask)}, previews

    train_jit = jax.jit(
        train_step,
        static_argnums=(2,),
        in_shardings=(replicated, sharded),
        out_shardings=(replicated, replicated),
        donate_argnums=(0,),
    )
    eval_jit = jax.jit(
        eval_step, in_shardings=(replicated, sharded, sharded), out_shardings=(replicated, sharded)
    )
    return train_jit, eval_jit


def _optimizer_for_state(tx: optax.GradientTransformation, state: TrainState) -> optax.GradientTransformation:
    """``tx``, checked (while tracing) to fit the state's optimizer state: a
    state made without the steps' ``frozen`` fails here in a line, not deep in optax."""
    if jax.tree.structure(jax.eval_shape(tx.init, state.params)) != jax.tree.structure(state.opt_state):
        raise TrainingError("the train state's optimizer does not fit the steps': make both with the same frozen "
                            "collections (init_state(..., frozen=...), compiled_steps(..., frozen))")
    return tx


def make_mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("data",))


def init_state(variables: dict, *, lr: float, clip_norm: float, seed: int, mesh: Mesh,
               frozen=frozenset()) -> TrainState:
    """A replicated TrainState around ``variables`` (fresh Adam moments, step 0).

    ``frozen``: the collections the steps may freeze (make_optimizer); empty
    for a run that never freezes.
    """
    return _state_maker(clip_norm, mesh, frozenset(frozen))(variables, jnp.float32(lr), jax.random.PRNGKey(seed))


@functools.lru_cache(maxsize=4)
def _state_maker(clip_norm: float, mesh: Mesh, frozen: frozenset):
    # One jitted program, compiled once per model shape in a process.
    def make(variables, lr, rng):
        params = variables["params"]
        return TrainState(
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=make_optimizer(lr, clip_norm, frozen).init(params),
            step=jnp.zeros((), jnp.int32),
            rng=rng,
        )

    return jax.jit(make, out_shardings=NamedSharding(mesh, P()))


def fresh_variables(model_config: ModelConfig, seed: int, size: int | None = None) -> dict:
    """Randomly initialized model variables (the same for the same seed)."""
    return init_variables(model_config, jax.random.PRNGKey(seed), size)


# A regression's ab is a conditional mean: where hues are uncertain it averages
# them toward gray, so its output is duller than the footage. A single gain that
# gives the validation frames back their chroma energy undoes most of that at
# little cost in PSNR (the error grows by (gain-1)^2 of the prediction's energy).
MAX_CHROMA_GAIN = 2.0


def chroma_gain(model_config: ModelConfig, variables, frames: np.ndarray, indices, size: int,
                batch_size: int = 16) -> float:
    """sqrt(sum |ab_true|^2 / sum |ab_pred|^2) over center crops of frames[indices], in [1, MAX_CHROMA_GAIN]."""
    forward = _chroma_energies(build_colorizer(model_config), size)
    true_sum = pred_sum = 0.0
    for batch_idx, mask in dataset.eval_batches(np.asarray(indices), batch_size):  # one shape: one compile
        t, q = forward(variables, frames[batch_idx], mask)
        true_sum, pred_sum = true_sum + float(t), pred_sum + float(q)
    if pred_sum <= 0.0:
        return 1.0
    return float(np.clip(math.sqrt(true_sum / pred_sum), 1.0, MAX_CHROMA_GAIN))


@functools.lru_cache(maxsize=4)
def _chroma_energies(model, size: int):
    @jax.jit
    def energies(variables, batch, mask):
        l_norm, target = prepare_batch(batch, None, size, "lab")
        out = model.apply(variables, l_norm, train=False).astype(jnp.float32)
        weight = mask[:, None, None, None]
        return jnp.sum(jnp.square(target) * weight), jnp.sum(jnp.square(out) * weight)

    return energies


def compiled_steps(model_config: ModelConfig, clip_norm: float, size: int, loss: str, mesh: Mesh, frozen: frozenset,
                   bin_weights: tuple | None = None):
    """``make_steps`` memoized, so repeated ``train`` calls in one process compile once.

    The learning rate is not part of the key: it lives in the optimizer state
    (inject_hyperparams), so one compiled step serves every LR. ``frozen``:
    the collections --freeze-backbone-epochs holds, empty for a run without
    it (its state made with the same, see init_state).
    """
    # lru_cache tells f(a) from f(a, None): every caller reaches it with all
    # arguments, or one that left out bin_weights would compile the steps again.
    return _compiled_steps(model_config, clip_norm, size, loss, mesh, frozenset(frozen), bin_weights)


@functools.lru_cache(maxsize=4)
def _compiled_steps(model_config, clip_norm, size, loss, mesh, frozen, bin_weights):
    model = build_colorizer(model_config)
    tx = make_optimizer(1e-3, clip_norm, frozen)
    frozen_tx = make_optimizer(1e-3, clip_norm, frozen, hold_frozen=True) if frozen else None
    return make_steps(model, tx, size=size, mode=model_config.mode, loss=loss, mesh=mesh, frozen=frozen,
                      frozen_tx=frozen_tx, bin_weights=bin_weights)


def bin_weights_for(frames: np.ndarray, train_idx: np.ndarray, max_frames: int = 512) -> tuple:
    """Class-rebalancing weights of the bins head from the training frames' colors.

    A deterministic subsample (every k-th frame, every 4th pixel) is plenty for
    a 265-bin histogram, and makes a resumed run compute the same weights.
    """
    picked = train_idx[:: max(1, len(train_idx) // max_frames)]
    rgb = frames[picked, ::4, ::4].astype(np.float32) / 255.0
    ab = np.asarray(jax.jit(color.rgb_to_lab)(rgb))[..., 1:]
    return tuple(float(w) for w in abbins.class_weights(ab, abbins.bin_centers()))

"""Shape and data-movement ops (coremltools ops/defs/iOS15..iOS17 tensor_transformation.py,
tensor_operation.py, scatter_gather.py) and cast."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._registry import axes_of, axis_of, flag, ints, number, register

# MIL dtype names accepted by `cast` (ops/defs/iOS15/elementwise_unary.py), as torch dtypes.
# fp16 values are held as float32: the evaluator rounds fp16-typed outputs when emulating fp16.
CAST_DTYPES = {
    "fp16": torch.float32,
    "fp32": torch.float32,
    "fp64": torch.float64,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int16": torch.int16,
    "uint16": torch.int32,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}


@register("cast")
def cast(x, dtype):
    if dtype not in CAST_DTYPES:
        raise ValueError(f"cast: unsupported dtype {dtype!r}")
    target = CAST_DTYPES[dtype]
    if x.is_floating_point() and not target.is_floating_point and target != torch.bool:
        x = x.trunc()  # float -> int truncates toward zero, as numpy's astype
    return x.to(target)


@register("identity")
def identity(x):
    return x.clone()


@register("reshape")
def reshape(x, shape):
    dims = ints(shape)
    # A 0 copies the input's size on that axis when the new rank equals the old (iOS15 doc).
    if len(dims) == x.dim():
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


@register("transpose")
def transpose(x, perm):
    return x.permute(axes_of(perm, x.dim()))


@register("squeeze")
def squeeze(x, axes=None):
    if axes is None:
        return x.reshape([d for d in x.shape if d != 1])
    drop = set(axes_of(axes, x.dim()))
    return x.reshape([d for i, d in enumerate(x.shape) if i not in drop])


@register("expand_dims")
def expand_dims(x, axes):
    rank = x.dim() + len(ints(axes))
    shape = list(x.shape)
    for a in sorted(axes_of(axes, rank)):
        shape.insert(a, 1)
    return x.reshape(shape)


@register("flatten2d")
def flatten2d(x, axis=1):
    a = axis_of(axis, x.dim())
    return x.reshape(int(torch.tensor(x.shape[:a]).prod()), -1)


@register("concat")
def concat(values, axis, interleave=False):
    a = axis_of(axis, values[0].dim())
    if not flag(interleave):
        return torch.cat(list(values), dim=a)
    # Interleave: take one slice of each input in turn along `axis` (all inputs the same shape).
    stacked = torch.stack(list(values), dim=a + 1)
    shape = list(values[0].shape)
    shape[a] *= len(values)
    return stacked.reshape(shape)


@register("stack")
def stack(values, axis):
    return torch.stack(list(values), dim=axis_of(axis, values[0].dim() + 1))


@register("split")
def split(x, axis, num_splits=None, split_sizes=None):
    a = axis_of(axis, x.dim())
    if split_sizes is not None:
        sizes = ints(split_sizes)
    else:
        n = ints(num_splits)[0]
        step = -(-x.shape[a] // n)  # ceil: the last piece may be smaller
        sizes = [min(step, x.shape[a] - i * step) for i in range(n)]
    return tuple(torch.split(x, sizes, dim=a))


def _take_range(x: torch.Tensor, axis: int, begin, end, step: int) -> torch.Tensor:
    """Python/numpy slice semantics on one axis (torch slicing has no negative step)."""
    if step > 0:
        return x[(slice(None),) * axis + (slice(begin, end, step),)]
    return x.index_select(axis, torch.arange(*slice(begin, end, step).indices(x.shape[axis])))


@register("slice_by_index")
def slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    r = x.dim()
    b, e = ints(begin), ints(end)
    s = ints(stride) if stride is not None else [1] * r
    bm = [bool(v) for v in ints(begin_mask)] if begin_mask is not None else [False] * r
    em = [bool(v) for v in ints(end_mask)] if end_mask is not None else [False] * r
    sq = [bool(v) for v in ints(squeeze_mask)] if squeeze_mask is not None else [False] * r
    for axis in range(r):
        if sq[axis]:
            # A squeezed axis keeps exactly the element at `begin`.
            start = b[axis] + x.shape[axis] if b[axis] < 0 else b[axis]
            x = x.narrow(axis, start, 1)
            continue
        x = _take_range(x, axis, None if bm[axis] else b[axis], None if em[axis] else e[axis], s[axis])
    return x.reshape([d for i, d in enumerate(x.shape) if not sq[i]])


@register("slice_by_size")
def slice_by_size(x, begin, size):
    for axis, (b, n) in enumerate(zip(ints(begin), ints(size))):
        b = b + x.shape[axis] if b < 0 else b
        x = x.narrow(axis, b, x.shape[axis] - b if n == -1 else n)
    return x


def _wrap(indices: torch.Tensor, size: int) -> torch.Tensor:
    indices = indices.long()
    return torch.where(indices < 0, indices + size, indices)


@register("gather")
def gather(x, indices, axis=0, batch_dims=0, validate_indices=False):
    a = axis_of(axis, x.dim())
    bd = ints(batch_dims)[0]
    idx = _wrap(indices, x.shape[a])
    if bd == 0:
        out = x.index_select(a, idx.reshape(-1))
        return out.reshape(list(x.shape[:a]) + list(idx.shape) + list(x.shape[a + 1 :]))
    # batch_dims > 0: the first bd axes of x and indices are paired batch axes.
    batch = list(x.shape[:bd])
    xs = x.reshape([-1] + list(x.shape[bd:]))
    ids = idx.reshape([-1] + list(idx.shape[bd:]))
    parts = [gather(xs[i], ids[i], a - bd, 0) for i in range(xs.shape[0])]
    return torch.stack(parts).reshape(batch + list(parts[0].shape))


@register("gather_along_axis")
def gather_along_axis(x, indices, axis=0, validate_indices=False):
    a = axis_of(axis, x.dim())
    return torch.gather(x, a, _wrap(indices, x.shape[a]))


@register("gather_nd")
def gather_nd(x, indices, batch_dims=0, validate_indices=False):
    bd = ints(batch_dims)[0]
    if bd:
        xs = x.reshape([-1] + list(x.shape[bd:]))
        ids = indices.reshape([-1] + list(indices.shape[bd:]))
        parts = [gather_nd(xs[i], ids[i]) for i in range(xs.shape[0])]
        return torch.stack(parts).reshape(list(x.shape[:bd]) + list(parts[0].shape))
    k = indices.shape[-1]
    flat = indices.reshape(-1, k).long()
    cols = [_wrap(flat[:, j], x.shape[j]) for j in range(k)]
    out = x[tuple(cols)]
    return out.reshape(list(indices.shape[:-1]) + list(x.shape[k:]))


@register("tile")
def tile(x, reps):
    return x.repeat(ints(reps))


@register("pad")
def pad(x, pad, mode="constant", constant_val=0.0):
    # `pad` is [before, after] per padded axis, for the last len(pad)/2 axes, first axis first.
    p = ints(pad)
    torch_pad: list[int] = []
    for i in reversed(range(len(p) // 2)):
        torch_pad += [p[2 * i], p[2 * i + 1]]
    if mode == "constant":
        return F.pad(x, torch_pad, value=number(constant_val))
    torch_mode = {"reflect": "reflect", "replicate": "replicate"}.get(mode)
    if torch_mode is None:
        raise ValueError(f"pad: unsupported mode {mode!r}")
    # torch's reflect/replicate want a batch+channel prefix; add it and take it off again.
    lead = x.dim() - len(p) // 2
    y = x.reshape([1, -1] + list(x.shape[lead:])) if lead != 2 else x
    y = F.pad(y, torch_pad, mode=torch_mode)
    return y.reshape(list(x.shape[:lead]) + list(y.shape[2:]))


@register("shape")
def shape(x):
    return torch.tensor(list(x.shape), dtype=torch.int32)


@register("fill")
def fill(shape, value=0.0):
    return torch.full(ints(shape), number(value))


@register("fill_like")
def fill_like(ref_tensor, value=0.0):
    return torch.full(list(ref_tensor.shape), number(value))


@register("range_1d")
def range_1d(end, start, step):
    vals = [end, start, step]
    floating = any(v.is_floating_point() for v in vals)
    kind = torch.float32 if floating else torch.int32
    return torch.arange(number(start), number(end), number(step), dtype=kind)


@register("select")
def select(cond, a, b):
    return torch.where(cond.bool(), a, b)


@register("reverse")
def reverse(x, axes=None):
    dims = axes_of(axes, x.dim()) if axes is not None else list(range(x.dim()))
    return torch.flip(x, dims)


@register("topk")
def topk(x, k=1, axis=-1, ascending=False, sort=True, return_indices=True):
    a = axis_of(axis, x.dim())
    values, indices = torch.topk(x, ints(k)[0], dim=a, largest=not flag(ascending), sorted=True)
    return values, indices.to(torch.int32)


@register("argsort")
def argsort(x, axis=-1, ascending=False):
    a = axis_of(axis, x.dim())
    return torch.argsort(x, dim=a, descending=not flag(ascending), stable=True).to(torch.int32)


@register("cumsum")
def cumsum(x, axis=0, exclusive=False, reverse=False):
    a = axis_of(axis, x.dim())
    y = torch.flip(x, [a]) if flag(reverse) else x
    out = torch.cumsum(y, dim=a).to(x.dtype)
    if flag(exclusive):
        out = out - y
    return torch.flip(out, [a]) if flag(reverse) else out


@register("one_hot")
def one_hot(indices, one_hot_vector_size, axis=-1, on_value=1.0, off_value=0.0):
    n = ints(one_hot_vector_size)[0]
    hot = F.one_hot(_wrap(indices, n), n).to(torch.float32)
    out = hot * number(on_value) + (1 - hot) * number(off_value)
    a = axis_of(axis, indices.dim() + 1)
    return out.movedim(-1, a)


@register("depth_to_space")
def depth_to_space(x, block_size):
    # DCR order, as TensorFlow's depth_to_space.
    bs = ints(block_size)[0]
    n, c, h, w = x.shape
    y = x.reshape(n, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (bs * bs), h * bs, w * bs)


@register("space_to_depth")
def space_to_depth(x, block_size):
    bs = ints(block_size)[0]
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // bs, bs, w // bs, bs).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * bs * bs, h // bs, w // bs)


@register("pixel_shuffle")
def pixel_shuffle(x, upscale_factor):
    return F.pixel_shuffle(x, ints(upscale_factor)[0])


@register("pixel_unshuffle")
def pixel_unshuffle(x, downscale_factor):
    return F.pixel_unshuffle(x, ints(downscale_factor)[0])

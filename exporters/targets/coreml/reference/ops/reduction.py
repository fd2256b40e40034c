"""reduce_* ops (coremltools ops/defs/iOS15/reduction.py)."""

from __future__ import annotations

import torch

from ._registry import axes_of, axis_of, flag, register


def _dims(x, axes):
    return axes_of(axes, x.dim()) if axes is not None else list(range(x.dim()))


def _reducer(fn):
    def reduce(x, axes=None, keep_dims=False):
        dims = _dims(x, axes)
        return fn(x, dims, flag(keep_dims)) if dims else x

    return reduce


_REDUCE = {
    "reduce_mean": lambda x, d, k: x.mean(dim=d, keepdim=k),
    "reduce_sum": lambda x, d, k: x.sum(dim=d, keepdim=k),
    "reduce_prod": lambda x, d, k: _over(torch.prod, x, d, k),
    "reduce_max": lambda x, d, k: x.amax(dim=d, keepdim=k),
    "reduce_min": lambda x, d, k: x.amin(dim=d, keepdim=k),
    "reduce_l1_norm": lambda x, d, k: x.abs().sum(dim=d, keepdim=k),
    "reduce_l2_norm": lambda x, d, k: torch.sqrt((x * x).sum(dim=d, keepdim=k)),
    "reduce_sum_square": lambda x, d, k: (x * x).sum(dim=d, keepdim=k),
    "reduce_log_sum": lambda x, d, k: torch.log(x.sum(dim=d, keepdim=k)),
    "reduce_log_sum_exp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
}


def _over(fn, x, dims, keep):
    # torch.prod reduces one axis at a time; go from the last so indices stay valid.
    for d in sorted(dims, reverse=True):
        x = fn(x, dim=d, keepdim=keep)
    return x


for _name, _fn in _REDUCE.items():
    register(_name)(_reducer(_fn))


@register("reduce_argmax")
def reduce_argmax(x, axis=-1, keep_dims=False):
    # torch returns the first maximal index on ties, as MIL does.
    return torch.argmax(x, dim=axis_of(axis, x.dim()), keepdim=flag(keep_dims)).to(torch.int32)


@register("reduce_argmin")
def reduce_argmin(x, axis=-1, keep_dims=False):
    return torch.argmin(x, dim=axis_of(axis, x.dim()), keepdim=flag(keep_dims)).to(torch.int32)

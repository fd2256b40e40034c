"""Elementwise binary and unary ops (numpy-style broadcasting, as MIL specifies)."""

from __future__ import annotations

import torch

from ._registry import number, register

_BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "pow": torch.pow,
    "floor_div": torch.floor_divide,
    "mod": torch.remainder,
    "equal": torch.eq,
    "not_equal": torch.ne,
    "greater": torch.gt,
    "greater_equal": torch.ge,
    "less": torch.lt,
    "less_equal": torch.le,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
}


def _binary(fn):
    return lambda x, y: fn(x, y)


for _name, _fn in _BINARY.items():
    register(_name)(_binary(_fn))


@register("real_div")
def real_div(x, y):
    out = torch.true_divide(x, y)
    # Integer real_div stays integer in MIL (type domain T); it truncates like C division.
    return out.trunc().to(x.dtype) if not x.is_floating_point() else out


_UNARY = {
    "abs": torch.abs,
    "acos": torch.acos,
    "asin": torch.asin,
    "atan": torch.atan,
    "atanh": torch.atanh,
    "ceil": torch.ceil,
    "cos": torch.cos,
    "cosh": torch.cosh,
    "erf": torch.erf,
    "exp": torch.exp,
    "exp2": torch.exp2,
    "floor": torch.floor,
    "logical_not": torch.logical_not,
    "sign": torch.sign,
    "sin": torch.sin,
    "sinh": torch.sinh,
    "sqrt": torch.sqrt,
    "square": torch.square,
    "tan": torch.tan,
    "tanh": torch.tanh,
    # MIL round: half to even like np.round ("0.5 is rounded to 0"), which torch.round also does.
    "round": torch.round,
}


def _unary(fn):
    return lambda x: fn(x)


for _name, _fn in _UNARY.items():
    register(_name)(_unary(_fn))


@register("clip")
def clip(x, alpha, beta):
    return torch.clamp(x, number(alpha), number(beta))


@register("threshold")
def threshold(x, alpha):
    return torch.clamp(x, min=number(alpha))


# Default epsilons from the iOS15 op definitions (inverse 1e-4, log 1e-45, rsqrt 1e-12).
@register("inverse")
def inverse(x, epsilon=1e-4):
    return 1.0 / (x + number(epsilon))


@register("log")
def log(x, epsilon=1e-45):
    return torch.log(x + number(epsilon))


@register("rsqrt")
def rsqrt(x, epsilon=1e-12):
    return 1.0 / torch.sqrt(x + number(epsilon))

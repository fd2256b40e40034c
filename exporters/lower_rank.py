"""Lower rank > 5 reshape/permute chains to rank <= 5 ones before any target traces a network.

CoreML takes tensors of rank 5 at most, and mvit holds ONNX and TFLite artefacts to the same
limit. Tutorial-style MobileViT blocks unfold with einops
`rearrange(x, 'b d (h ph) (w pw) -> b (ph pw) (h w) d')`, which is reshape to rank 6 (b, d, h,
ph, w, pw), permute, reshape back. Such a chain only moves data, so it is rewritten: axes of size
1 are dropped, axes that stay adjacent are merged, and when more than `max_rank` axes remain the
permutation becomes a few block swaps, each `reshape [pre, A, B, post] -> permute(0, 2, 1, 3)`.

The network is captured as an aten-level `torch.fx.GraphModule` with concrete shapes
(`make_fx(pre_dispatch=True)` keeps conv2d, linear, layer_norm and softmax whole, so
`torch.jit.trace` and `torch.export` see the same ops as in the original module). Parameters
keep their names. A network without a tensor above `max_rank` is returned as it came, so
registry models export exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .base import ExportError

aten = torch.ops.aten
# Ops that only change how the same elements are indexed. Reshapes take their new shape from the
# node's recorded output, so their arguments need not be parsed.
_RESHAPES = {
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.flatten.using_ints,
    aten.unflatten.int,
    aten.squeeze.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.unsqueeze.default,
}
_COPIES = {aten.clone.default, aten.contiguous.default, aten.alias.default, aten.detach.default}
_PERMUTES = {aten.permute.default, aten.transpose.int}


class LowerRankError(ExportError):
    """The network computes on a tensor above the rank limit, not just reshapes through one."""


@dataclass(frozen=True)
class RankLowering:
    """What lower_rank did to a network: the report's rank_lowering."""

    max_rank_before: int
    max_rank_after: int
    rewrites: list[dict[str, Any]] = field(default_factory=list)  # one entry per lowered chain
    max_abs_difference: float | None = None  # lowered against original outputs; None: nothing was lowered

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_rank_before": self.max_rank_before, "max_rank_after": self.max_rank_after, "rewrites": self.rewrites}
        if self.max_abs_difference is not None:
            out["max_abs_difference"] = self.max_abs_difference
        return out


def lower_rank(module: nn.Module, example: torch.Tensor, max_rank: int = 5) -> tuple[nn.Module, RankLowering]:
    """(module every target can trace, what was rewritten). Outputs equal the original's exactly."""
    module.eval()
    with torch.no_grad(), _MaxRank() as probe:
        expected = module(example)
    before = max(probe.max_rank, example.dim())
    if before <= max_rank:
        return module, RankLowering(before, before)
    graph_module = capture(module, example)
    rewrites = _rewrite(graph_module, max_rank)
    if not rewrites:
        # Above the limit only inside an op that converters take whole (e.g. pixel_shuffle's kernel).
        return module, RankLowering(before, before)
    after, got = _graph_max_rank(graph_module, example)
    if after > max_rank:
        raise LowerRankError(f"lowering left a rank-{after} tensor in the network; please report this network")
    return graph_module, RankLowering(before, after, rewrites, _difference(expected, got))


class _MaxRank(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.max_rank = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.max_rank = max(self.max_rank, t.dim())
        return out


def capture(module: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """`module` as an aten-level graph with concrete shapes, parameters and buffers by their names."""
    try:
        with torch.no_grad():
            traced = make_fx(module, pre_dispatch=True)(example)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ExportError(f"cannot capture the network to lower its rank > 5 tensors: {exc.__class__.__name__}: {first}") from None
    names = {id(t): n for n, t in [*module.named_parameters(), *module.named_buffers()]}
    attrs: dict[str, Any] = {}
    for node in traced.graph.nodes:
        if node.op == "get_attr":
            value = getattr(traced, node.target)
            node.target = names.get(id(value), node.target)
            attrs[node.target] = value
    return fx.GraphModule(attrs, traced.graph, class_name=f"{type(module).__name__}RankLowered")


def _rank(node: fx.Node) -> int:
    tensors = [t for t in tree_flatten(node.meta.get("val"))[0] if isinstance(t, torch.Tensor)]
    return max((t.dim() for t in tensors), default=0)


def _shape(node: fx.Node) -> list[int]:
    return [int(s) for s in node.meta["val"].shape]


def _describe(node: fx.Node) -> str:
    val = node.meta.get("val")
    shape = list(val.shape) if isinstance(val, torch.Tensor) else "?"
    return f"{node.target if node.op == 'call_function' else node.op} (shape {shape})"


def _rewrite(gm: fx.GraphModule, max_rank: int) -> list[dict[str, Any]]:
    """Replace every chain through tensors above `max_rank` by a lowered chain; returns the rewrites.

    A tensor above the limit is tracked as (source node, view shape V, permutation P): its value is
    permute(reshape(source, V), P) with `source` at most `max_rank`. It is materialised where a
    reshape leaves the chain (or needs the permuted layout to reshape further).
    """
    graph = gm.graph
    chains: dict[fx.Node, tuple[fx.Node, list[int], list[int]]] = {}
    rewrites: list[dict[str, Any]] = []
    for node in list(graph.nodes):
        inside = [a for a in node.all_input_nodes if a in chains]
        big = _rank(node) > max_rank
        if not big and not inside:
            continue
        op = node.target if node.op == "call_function" else None
        first = node.args[0] if node.args else None
        source: fx.Node | None = first if isinstance(first, fx.Node) else None
        if op not in _RESHAPES | _COPIES | _PERMUTES or inside not in ([], [source]) or (not inside and op not in _RESHAPES):
            culprit = node if big else inside[0]
            raise LowerRankError(
                f"the network computes on a rank-{_rank(culprit)} tensor ({_describe(node)}); only reshape/permute "
                f"chains through rank > {max_rank} can be lowered: rewrite that step to use at most {max_rank} dimensions"
            )
        if not inside:
            chains[node] = (node if source is None else source, _shape(node), list(range(len(_shape(node)))))
            continue
        assert source is not None  # `inside` is [source] here
        src, view, perm = chains[source]
        if op in _COPIES:
            chains[node] = (src, view, perm)
        elif op in _PERMUTES:
            dims = _permute_dims(node, len(perm))
            chains[node] = (src, view, [perm[d] for d in dims])
        elif perm == sorted(perm) and big:
            chains[node] = (src, _shape(node), list(range(len(_shape(node)))))
        else:
            out_shape = _shape(node) if not big else [math.prod(_shape(node))]
            with graph.inserting_before(node):
                lowered, steps = _emit(graph, src, view, perm, out_shape, max_rank)
            rewrites.append({"at": node.name, "view": view, "permutation": perm, "output_shape": _shape(node), **steps})
            if big:
                chains[node] = (lowered, _shape(node), list(range(len(_shape(node)))))
            else:
                node.replace_all_uses_with(lowered)
    graph.eliminate_dead_code()
    gm.recompile()
    return rewrites


def _permute_dims(node: fx.Node, rank: int) -> list[int]:
    if node.target == aten.transpose.int:
        a, b = (int(d) % rank for d in node.args[1:3])  # type: ignore[arg-type]
        dims = list(range(rank))
        dims[a], dims[b] = b, a
        return dims
    perm: Any = node.args[1]
    return [int(d) % rank for d in perm]


def simplify(view: list[int], perm: list[int]) -> tuple[list[int], list[int]]:
    """The same data movement with unit axes dropped and axes that stay neighbours merged."""
    kept = [i for i, s in enumerate(view) if s != 1]
    renumber = {old: new for new, old in enumerate(kept)}
    sizes = [view[i] for i in kept]
    order = [renumber[p] for p in perm if p in renumber]
    position = {axis: k for k, axis in enumerate(order)}
    groups: list[list[int]] = []
    for axis in range(len(sizes)):
        if groups and position[axis] == position[groups[-1][-1]] + 1:
            groups[-1].append(axis)
        else:
            groups.append([axis])
    head = {g[0]: k for k, g in enumerate(groups)}
    return [math.prod(sizes[a] for a in g) for g in groups], [head[a] for a in order if a in head]


def block_swaps(sizes: list[int], perm: list[int]) -> list[list[int]]:
    """Shapes [pre, A, B, post] whose successive swap of A and B realises `perm` on `sizes`.

    Insertion order: for each target position, the block that belongs there (with any following
    axes that also follow it in the target) is swapped in front of what sits there now.
    """

    def size(axes: list[int]) -> int:
        return math.prod(sizes[a] for a in axes)

    current = list(range(len(sizes)))
    swaps = []
    for i, wanted in enumerate(perm):
        j = current.index(wanted)
        if j == i:
            continue
        k = j + 1
        while k < len(current) and i + k - j < len(perm) and current[k] == perm[i + k - j]:
            k += 1
        swaps.append([size(current[:i]), size(current[i:j]), size(current[j:k]), size(current[k:])])
        current = current[:i] + current[j:k] + current[i:j] + current[k:]
    return swaps


def lowered_steps(view: list[int], perm: list[int], max_rank: int = 5) -> list[tuple[str, list[int]]]:
    """("reshape", shape) / ("permute", dims) steps equal to permute(reshape(x, view), perm), none above max_rank
    (the final reshape to the wanted output shape is the caller's)."""
    sizes, order = simplify(view, perm)
    if order == sorted(order):
        return []
    if len(sizes) <= max_rank:
        return [("reshape", sizes), ("permute", order)]
    steps: list[tuple[str, list[int]]] = []
    for shape in block_swaps(sizes, order):
        steps += [("reshape", shape), ("permute", [0, 2, 1, 3])]
    return steps


def _emit(graph: fx.Graph, src: fx.Node, view: list[int], perm: list[int], out_shape: list[int], max_rank: int) -> tuple[fx.Node, dict[str, Any]]:
    steps = lowered_steps(view, perm, max_rank)
    x = src
    for kind, arg in steps:
        x = graph.call_function(aten.reshape.default if kind == "reshape" else aten.permute.default, (x, arg))
    x = graph.call_function(aten.reshape.default, (x, out_shape))
    ranks = [len(arg) for _, arg in steps] + [len(out_shape)]
    return x, {"permutes": sum(kind == "permute" for kind, _ in steps), "max_rank": max(ranks)}


def _graph_max_rank(gm: fx.GraphModule, example: torch.Tensor) -> tuple[int, Any]:
    """(largest rank in the rewritten graph as a tracer sees it, ops taken whole; its outputs).

    Captured nodes carry their recorded value; the emitted reshapes and permutes carry their shape
    or dims argument, which has the rank of their output.
    """
    ranks = [example.dim()]
    for node in gm.graph.nodes:
        if "val" in node.meta:
            ranks.append(_rank(node))
        elif node.target in (aten.reshape.default, aten.permute.default):
            ranks.append(len(node.args[1]))
    with torch.no_grad():
        outputs = gm(example)
    return max(ranks), outputs


def _difference(expected: Any, got: Any) -> float:
    """Refuse a rewrite that changes any output by more than 1e-6 (it only moves data, so it should not)."""
    want = [t for t in tree_flatten(expected)[0] if isinstance(t, torch.Tensor)]
    have = [t for t in tree_flatten(got)[0] if isinstance(t, torch.Tensor)]
    if len(want) != len(have) or any(w.shape != h.shape for w, h in zip(want, have)):
        raise ExportError("lowering rank > 5 tensors changed the shapes of the network's outputs; please report this network")
    diff = max((float((w.double() - h.double()).abs().amax()) for w, h in zip(want, have) if w.numel()), default=0.0)
    if diff > 1e-6:
        raise ExportError(f"lowering rank > 5 tensors changed the network's outputs by {diff:.3g}; please report this network")
    return diff

"""`python -m mvit.models`: the registry as a markdown table (the source of docs/models.md)."""

from .registry import create_model, get_spec, list_models


def registry_table() -> str:
    rows = ["| model | task | input | params | default preprocessing |", "|---|---|---|---|---|"]
    for name in list_models():
        spec, pre = get_spec(name), get_spec(name).preprocess
        params = sum(p.numel() for p in create_model(name).parameters())
        scale = "x1/255" if abs(pre.scale * 255 - 1) < 1e-9 else f"x{pre.scale:.6g}"
        recipe = f"resize {pre.resize_shortest}, crop {pre.crop}, {scale}, {pre.channel_order}"
        if pre.has_mean_std:
            recipe += f", mean {pre.mean} std {pre.std}"
        rows.append(f"| `{name}` | {spec.task} | {spec.input_size} | {params:,} | {recipe} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(registry_table())

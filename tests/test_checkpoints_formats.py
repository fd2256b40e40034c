"""ml-cvnets, timm and our own format: exact key names, round trips, and clean failures."""

import ast
from pathlib import Path

import pytest
import torch
from model_utils import randomize_

from mvit.models import create_model
from mvit.models.checkpoints import CheckpointError, load_checkpoint, save_checkpoint, to_format

# The exact key lists of Apple's released checkpoints (HF, ml-cvnets, timm), copied into the
# repository so a fresh clone's tests read nothing outside it.
KEYS = Path(__file__).resolve().parent / "data" / "keys"

CASES = [
    ("cvnets/classification", "cvnets_classification_xxs", "mobilevit_xxs"),
    ("cvnets/segmentation", "cvnets_segmentation_xxs", "deeplabv3_mobilevit_xxs"),
    ("timm/classification", "timm_classification_xxs", "mobilevit_xxs"),
    ("hf/classification", "hf_classification_xxs", "mobilevit_xxs"),
    ("hf/segmentation", "hf_segmentation_xxs", "deeplabv3_mobilevit_xxs"),
]


def reference_keys(name: str) -> dict[str, tuple | None]:
    """Key -> shape (where the list records one) from tests/data/keys."""
    out = {}
    for line in (KEYS / f"{name}.txt").read_text().splitlines():
        if line.strip():
            key, _, shape = line.partition("\t")
            out[key.strip()] = tuple(ast.literal_eval(shape)) if shape.strip() else None
    return out


@pytest.mark.parametrize("fmt,keys,model_name", CASES)
def test_converted_state_dict_has_exactly_the_reference_keys_and_shapes(fmt, keys, model_name):
    expected = reference_keys(keys)
    converted = to_format(create_model(model_name).state_dict(), fmt)
    assert set(converted) == set(expected)
    for key, shape in expected.items():
        if shape is not None:
            assert tuple(converted[key].shape) == shape, key


@pytest.mark.parametrize("fmt,keys,model_name", [c for c in CASES if not c[0].startswith("hf/")])
def test_foreign_state_dict_loads_back_identically(fmt, keys, model_name, tmp_path):
    model = randomize_(create_model(model_name))
    path = tmp_path / "weights.pt"
    torch.save(to_format(model.state_dict(), fmt), path)
    loaded, info = load_checkpoint(path)
    assert info.format == fmt and info.model_name == model_name
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_size_is_read_from_tensor_shapes(tmp_path):
    model = randomize_(create_model("mobilevit_s"))
    torch.save({"state_dict": to_format(model.state_dict(), "cvnets/classification")}, tmp_path / "s.pt")
    assert load_checkpoint(tmp_path / "s.pt")[1].model_name == "mobilevit_s"


@pytest.mark.parametrize("name,config", [("ssdlite_mobilevit_xxs", "B"), ("mobilenet_v2", "A"), ("deeplabv3_mobilevit_xxs", "A")])
def test_own_format_round_trip_keeps_config_and_labels(name, config, tmp_path):
    model = randomize_(create_model(name, config))
    path = save_checkpoint(model, tmp_path / "m.safetensors", name, config, labels=None, channel_order="RGB")
    loaded, info = load_checkpoint(path)
    assert (info.model_name, info.format, info.channel_order) == (name, "mvit", "RGB")
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        assert torch.equal(u, v)
    assert not list(tmp_path.glob("*.tmp")), "no temporary file left behind"


def test_missing_key_names_the_key_and_the_model_it_looked_like(tmp_path):
    sd = to_format(create_model("mobilevit_xxs").state_dict(), "cvnets/classification")
    del sd["layer_3.1.fusion.block.conv.weight"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "bad.pt")
    msg = str(err.value)
    assert "layer_3.1.fusion.block.conv.weight" in msg and "extra.weight" in msg
    assert "cvnets/classification checkpoint of mobilevit_xxs" in msg and "\n" not in msg


def test_wrong_model_name_and_unknown_layout_are_refused(tmp_path):
    torch.save(to_format(create_model("mobilevit_xxs").state_dict(), "timm/classification"), tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="holds mobilevit_xxs"):
        load_checkpoint(tmp_path / "t.pt", model_name="mobilevit_xs")
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="matches no known MobileViT checkpoint layout"):
        load_checkpoint(tmp_path / "x.pt")


def test_unreadable_files_and_folders_fail_cleanly(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")
    folder = tmp_path / "hf"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="without config.json"):
        load_checkpoint(folder)
    (folder / "config.json").write_text('{"model_type": "vit", "architectures": ["ViTModel"]}')
    with pytest.raises(CheckpointError, match="supported: model_type 'mobilevit'"):
        load_checkpoint(folder)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickles_that_would_run_code_are_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"x": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="mvit never unpickles those") as exc:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only=False" not in str(exc.value)  # never point users at the unsafe switch
    assert not marker.exists()

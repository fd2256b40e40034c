"""The Swift an app needs per task, in the READMEs, cannot drift from the harness's source (issue 11).

ios_harness/Sources/MVitBenchCoreML/UsageExamples.swift holds the snippets between
`// snippet: NAME` and `// end snippet`; it is parsed with tree-sitter like every harness file
(tests/test_ios_harness.py) and compiled with the package on a Mac. ios_harness/README.md shows
every snippet whole; README.md shows excerpts, each a caption (`// detector: ...`) over a run of
consecutive lines of the snippet it names. The
snippets read the names the exporters write (the class map, the threshold inputs).
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import pytest
from swift_source import syntax_problems

from mvit.exporters.targets.coreml.pipeline import THRESHOLD_INPUTS
from mvit.exporters.targets.coreml.preview import CLASS_MAP_OUTPUT

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "ios_harness" / "Sources" / "MVitBenchCoreML" / "UsageExamples.swift"
HARNESS_README = REPO / "ios_harness" / "README.md"
README = REPO / "README.md"
TASKS = ("classifier", "segmenter", "detector", "multifunction")


def snippets(source: str) -> dict[str, str]:
    """NAME -> the dedented lines between `// snippet: NAME` and the next `// end snippet`."""
    found = {}
    for match in re.finditer(r"^[ \t]*// snippet: (\w+)\n(.*?)^[ \t]*// end snippet\n", source, re.S | re.M):
        found[match.group(1)] = textwrap.dedent(match.group(2)).strip("\n")
    return found


def swift_blocks(markdown: str) -> list[str]:
    """The ```swift blocks of a markdown text, dedented (a block may sit inside a list item)."""
    return [textwrap.dedent(b).strip("\n") for b in re.findall(r"^[ \t]*```swift\n(.*?)^[ \t]*```", markdown, re.S | re.M)]


def is_excerpt(block: str, snippet: str) -> bool:
    """`block` is a run of consecutive lines of `snippet`, compared after dedenting both."""
    lines, whole = textwrap.dedent(block).splitlines(), snippet.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    for start in range(len(whole) - len(lines) + 1):
        window = whole[start : start + len(lines)]
        window_indent = min((len(line) - len(line.lstrip()) for line in window if line.strip()), default=0)
        if [line[window_indent:] for line in window] == [line[indent:] for line in lines]:
            return True
    return False


def drift(markdown: str, examples: dict[str, str], whole: bool) -> list[str]:
    """What a README gets wrong: a swift block that is no (whole) snippet, or a task it lacks.

    An excerpt (whole=False) starts with a caption naming its snippet, `// detector: ...`, and
    the lines under it must be consecutive lines of that snippet."""
    problems, shown = [], set()
    for block in swift_blocks(markdown):
        if whole:
            matches = [name for name, text in examples.items() if block == text]
        else:
            caption, _, body = block.partition("\n")
            name = re.match(r"// (\w+):", caption)
            matches = [name.group(1)] if name and name.group(1) in examples and is_excerpt(body, examples[name.group(1)]) else []
        if not matches:
            problems.append(f"swift block not in UsageExamples.swift: {block.splitlines()[0]!r}...")
        shown.update(matches)
    problems += [f"no swift block for the {name} snippet" for name in examples if name not in shown]
    return problems


def test_usage_examples_parse_and_cover_every_task():
    source = EXAMPLES.read_text()
    assert not syntax_problems(source, "UsageExamples.swift")
    assert tuple(snippets(source)) == TASKS


def test_snippets_read_what_the_exporters_write():
    examples = snippets(EXAMPLES.read_text())
    assert "VNClassificationObservation" in examples["classifier"]
    assert f'$0.featureName == "{CLASS_MAP_OUTPUT}"' in examples["segmenter"]
    assert "VNCoreMLFeatureValueObservation" in examples["segmenter"]
    for name in THRESHOLD_INPUTS:  # the pipeline's optional inputs, fed through featureProvider
        assert f'"{name}":' in examples["detector"]
    assert "featureProvider" in examples["detector"] and "VNRecognizedObjectObservation" in examples["detector"]
    assert "configuration.functionName = name" in examples["multifunction"]
    assert "@available(iOS 18.0, macOS 15.0, *)" in examples["multifunction"]


def test_classifier_feeds_the_recipe_the_export_was_verified_on():
    """The snippet resizes and crops as verification does, from the metadata the exporter writes,
    and does not leave it to Vision's .centerCrop (shortest side straight to the model's size)."""
    from mvit.exporters.preprocessing import preprocess_dict
    from mvit.models.registry import get_spec

    classifier = snippets(EXAMPLES.read_text())["classifier"]
    assert ".centerCrop" not in classifier and "VNClassificationObservation" in classifier
    assert 'metadata["preprocess"]' in classifier and "recipe.resizedAndCropped(photo)" in classifier
    recipe = get_spec("mobilevit_xs").preprocess
    assert (recipe.resize_shortest, recipe.crop) == (288, 256)
    recorded = preprocess_dict(recipe, raw_input=False, in_graph=False)
    assert {"resize_shortest": 288, "crop": 256}.items() <= recorded.items()
    assert 'case resizeShortest = "resize_shortest"' in classifier and "case crop\n" in classifier


def _swift_crop_box(width: int, height: int, resize_shortest: int, crop: int) -> tuple[int, int, int, int]:
    """PreprocessRecipe.resizedAndCropped's arithmetic (UsageExamples.swift), line by line:
    (resized width, resized height, left, top)."""
    scale = resize_shortest / min(width, height)
    new_width = max(float(crop), float(round(width * scale)))  # .rounded(.toNearestOrEven), as round()
    new_height = max(float(crop), float(round(height * scale)))
    left = math.floor((new_width - crop) / 2)
    top = math.floor((new_height - crop) / 2)
    return int(new_width), int(new_height), left, top


@pytest.mark.parametrize(
    ("width", "height"), [(4032, 3024), (3024, 4032), (1920, 1080), (500, 375), (256, 256), (300, 100), (577, 288), (769, 576)]
)  # 769 * 0.5 = 384.5
def test_classifier_crop_is_the_verification_crop(width, height):
    from mvit.evaluation.inputs import Crop

    source = EXAMPLES.read_text()
    assert "(width * scale).rounded(.toNearestOrEven)" in source  # Python's round() rounds half to even
    assert "((newWidth - CGFloat(crop)) / 2).rounded(.down)" in source
    reference = Crop.of(width, height, 288, 256)  # the arithmetic of exporters.samples.resize_and_crop
    assert _swift_crop_box(width, height, 288, 256) == (reference.resized_w, reference.resized_h, reference.left, reference.top)


def test_harness_readme_shows_every_snippet_whole():
    assert drift(HARNESS_README.read_text(), snippets(EXAMPLES.read_text()), whole=True) == []


def test_readme_shows_an_excerpt_of_every_snippet():
    assert drift(README.read_text(), snippets(EXAMPLES.read_text()), whole=False) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"mask"', '"classMap"', "swift block not in UsageExamples.swift"),  # a README line edited alone
        ("VNRecognizedObjectObservation", "VNDetectedObjectObservation", "swift block not in UsageExamples.swift"),
        ("```swift", "```text", "no swift block for the"),  # a task's block dropped
    ],
    ids=["edited-line", "renamed-type", "missing-task"],
)
def test_drift_is_reported(old, new, expected):
    examples = snippets(EXAMPLES.read_text())
    for path, whole in ((HARNESS_README, True), (README, False)):
        text = path.read_text()
        assert old in text, f"mutation {old!r} no longer applies to {path.name}"
        problems = "\n".join(drift(text.replace(old, new), examples, whole))
        assert expected in problems, f"{path.name}: expected {expected!r} in:\n{problems}"

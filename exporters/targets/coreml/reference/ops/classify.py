"""classify: the op coremltools appends for a ClassifierConfig (ops/defs/iOS15/classify.py).

In the program it yields the top class label and the probabilities; the model description turns the
latter into a {label: probability} dictionary. Here the probabilities stay an array in label order
(the order of `classes`), which is what verification compares.
"""

from __future__ import annotations

import torch

from ._registry import register


@register("classify")
def classify(probabilities, classes):
    # One prediction per call (the runner splits batches), so one label: the first row's best class.
    labels = list(classes)
    top = int(torch.argmax(probabilities.reshape(-1, len(labels))[0]))
    return labels[top], probabilities

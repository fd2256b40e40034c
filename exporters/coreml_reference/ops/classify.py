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
    labels = list(classes)
    probs = probabilities.reshape(-1) if probabilities.dim() > 1 and probabilities.shape[0] == 1 else probabilities
    top = int(torch.argmax(probs.reshape(-1, len(labels))[0]))
    return labels[top], probabilities

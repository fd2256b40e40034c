"""Detection NMS inside a Core AI graph, from ordinary tensor ops (Core AI has no NMS op).

Cluster-NMS (Bolya et al., YOLACT++ / Zheng et al. 2020): the best `candidates` (anchor, class)
pairs by score, their IoU matrix with only the upper triangle kept (a box can be suppressed only
by a higher-scoring one of its own class), then repeated rounds of "a box survives when no
surviving box above it overlaps it by more than the threshold". One round is Fast NMS; once the
rounds stop changing anything the survivors are exactly greedy per-class NMS's
(`mvit.models.detection_postprocess.select_detections`) on those candidates.

Outputs are fixed-size, best first: boxes [1, K, 4] xyxy in [0, 1], scores [1, K] (0 in unused
slots), class_ids [1, K] int32 (the model's class index, -1 in unused slots), num_detections [1].
"""

from __future__ import annotations

import torch
from torch import nn

from mvit.models.detection_postprocess import NmsSettings, box_iou

OUTPUT_NAMES = ["boxes", "scores", "class_ids", "num_detections"]
# Suppression chains on detector outputs are a few boxes long; each round costs one K x K max.
ROUNDS = 12
# Candidates per kept detection: greedy NMS over every anchor could keep a box that ranks below
# the first `max_detections` pairs once higher ones are suppressed; twice as many leaves room.
CANDIDATES_PER_DETECTION = 2


def candidate_count(num_pairs: int, settings: NmsSettings) -> int:
    return min(num_pairs, CANDIDATES_PER_DETECTION * settings.max_detections)


class ClusterNms(nn.Module):
    """(decoded boxes [1, A, 4], softmax scores [1, A, C]) from `module` -> fixed-size detections."""

    def __init__(self, module: nn.Module, settings: NmsSettings, num_anchors: int, num_classes: int) -> None:
        super().__init__()
        self.module = module
        self.iou_threshold, self.score_threshold = float(settings.iou_threshold), float(settings.score_threshold)
        self.foreground = num_classes - 1  # class 0 is background
        self.candidates = candidate_count(num_anchors * self.foreground, settings)
        self.kept = min(settings.max_detections, self.candidates)
        self.register_buffer("above_diagonal", torch.ones(self.candidates, self.candidates).triu(1), persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        boxes, probs = self.module(image)
        boxes, probs = boxes[0].float(), probs[0].float()
        scores, pair = torch.topk(probs[:, 1:].reshape(-1), self.candidates)
        anchor = torch.div(pair, self.foreground, rounding_mode="floor")
        cls = pair - anchor * self.foreground
        cand = boxes.index_select(0, anchor)
        same_class = (cls[:, None] == cls[None, :]).float()
        overlap = box_iou(cand, cand) * same_class * self.above_diagonal
        above = (scores > self.score_threshold).float()
        keep = above
        for _ in range(ROUNDS):
            worst = (overlap * keep[:, None]).amax(dim=0)
            keep = above * (worst <= self.iou_threshold).float()
        kept_scores, order = torch.topk(scores * keep, self.kept)
        valid = kept_scores > 0
        class_ids = torch.where(valid, cls.index_select(0, order) + 1, torch.full_like(order, -1)).to(torch.int32)
        out_boxes = cand.index_select(0, order) * valid[:, None].float()
        count = valid.to(torch.int32).sum().reshape(1)
        return out_boxes[None], kept_scores[None], class_ids[None], count


def with_nms(module: nn.Module, settings: NmsSettings, input_shape: tuple[int, ...]) -> ClusterNms:
    """`module` (decoded boxes, softmax scores) followed by ClusterNms, sized from one run at `input_shape`."""
    with torch.no_grad():
        boxes, probs = module(torch.zeros(input_shape))
    return ClusterNms(module, settings, int(boxes.shape[1]), int(probs.shape[2])).eval()

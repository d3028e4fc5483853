"""Box conversions, IoU and GIoU against values worked out by hand."""
import pytest
import torch

from come.model.box_ops import (box_area, box_cxcywh_to_xyxy, box_iou, box_xyxy_to_cxcywh,
                                generalized_box_iou)


def test_conversions_round_trip_and_hand_values():
    b = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    assert torch.allclose(box_cxcywh_to_xyxy(b), torch.tensor([[0.4, 0.3, 0.6, 0.7]]))
    assert torch.allclose(box_xyxy_to_cxcywh(box_cxcywh_to_xyxy(b)), b)
    x = torch.tensor([[1.0, 2.0, 4.0, 8.0]])
    assert torch.allclose(box_xyxy_to_cxcywh(x), torch.tensor([[2.5, 5.0, 3.0, 6.0]]))
    assert box_area(x).item() == pytest.approx(18.0)


def test_iou_and_giou_hand_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0],     # inter 1, union 7, hull 9
                      [0.0, 0.0, 2.0, 2.0],     # identical
                      [3.0, 0.0, 4.0, 1.0]])    # disjoint: inter 0, union 5, hull 4x2=8
    iou, union = box_iou(a, b)
    assert torch.allclose(iou, torch.tensor([[1 / 7, 1.0, 0.0]]))
    assert torch.allclose(union, torch.tensor([[7.0, 4.0, 5.0]]))
    giou = generalized_box_iou(a, b)
    assert torch.allclose(giou, torch.tensor([[1 / 7 - 2 / 9, 1.0, 0.0 - 3 / 8]]), atol=1e-6)


def test_giou_is_symmetric_bounded_and_rejects_inverted_boxes():
    torch.manual_seed(0)
    p = torch.rand(6, 4)
    boxes = torch.cat([p[:, :2], p[:, :2] + p[:, 2:]], 1)
    g = generalized_box_iou(boxes, boxes)
    assert torch.allclose(g, g.T, atol=1e-6)
    assert torch.allclose(g.diag(), torch.ones(6))
    assert (g >= -1).all() and (g <= 1).all()
    with pytest.raises(ValueError, match="x1 < x0"):
        generalized_box_iou(torch.tensor([[2.0, 0.0, 1.0, 1.0]]), boxes)

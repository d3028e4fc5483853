"""The small default DINO end to end on CPU: shapes, losses, gradients, FFN slot, post-process."""
import pytest
import torch
from torch import nn

from come.config.schema import Config
from come.model.detector import build_criterion, build_detector, postprocess
from come.model.ffn import FFNContext, register_ffn

from .helpers import batch

CALLS: list[dict] = []


@register_ffn("test_recording")
class RecordingFFN(nn.Module):
    """Dense-like FFN that records its context and returns a known auxiliary loss."""

    def __init__(self, cfg, d_model, stage="encoder", layer_idx=0):
        super().__init__()
        self.fc = nn.Linear(d_model, d_model)
        self.stage, self.layer_idx = stage, layer_idx

    def forward(self, x, ctx: FFNContext):
        CALLS.append({"stage": ctx.stage, "layer": ctx.layer_idx, "x": tuple(x.shape),
                      "ref": None if ctx.ref_points is None else tuple(ctx.ref_points.shape),
                      "ref_max": None if ctx.ref_points is None else float(ctx.ref_points.max()),
                      "ref_x_max0": None if ctx.ref_points is None else float(ctx.ref_points[0, :, 0].max()),
                      "ref_first": None if ctx.ref_points is None else ctx.ref_points[1, 0].tolist(),
                      "kpm": None if ctx.key_padding_mask is None else tuple(ctx.key_padding_mask.shape),
                      "src": ctx.source_ids.tolist(), "shared": sorted(ctx.shared)})
        aux = {"test_aux": torch.tensor(0.5) * (1 + ctx.layer_idx) + 0 * x.sum()}
        return self.fc(x), aux


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def small(class_mode="lesion") -> Config:
    cfg = Config()
    cfg.data.class_mode = class_mode
    return cfg


def test_forward_backward_small_default():
    torch.manual_seed(0)
    cfg = small()
    model, crit = build_detector(cfg), build_criterion(cfg)
    images, pad, src, targets = batch(128)
    model.train()
    out = model(images, pad, src, targets)
    q = cfg.model.num_queries
    assert out["pred_logits"].shape == (2, q, 1) and out["pred_boxes"].shape == (2, q, 4)
    assert len(out["aux_outputs"]) == cfg.model.dec_layers - 1
    assert out["interm_outputs"]["pred_boxes"].shape == (2, q, 4)
    meta = out["dn_meta"]
    assert meta == {"pad_size": 2 * 3 * (20 // 3), "num_groups": 20 // 3, "single_pad": 3}
    assert out["dn_outputs"]["pred_logits"].shape == (2, meta["pad_size"], 1)
    losses = crit(out, targets)
    for key in ("loss_ce", "loss_bbox_0", "loss_giou_interm", "loss_ce_dn", "loss_bbox_dn_0", "loss"):
        assert key in losses and torch.isfinite(losses[key]), key
    expected = sum(w * losses[k] for k in losses if k != "loss"
                   for base, w in (("loss_ce", 1.0), ("loss_bbox", 5.0), ("loss_giou", 2.0))
                   if k == base or k.startswith(base + "_"))
    assert torch.allclose(losses["loss"], expected)
    losses["loss"].backward()
    named = dict(model.named_parameters())
    for name in ("backbone.body.layer2.0.conv1.weight", "encoder.layers.0.self_attn.sampling_offsets.weight",
                 "decoder.layers.1.cross_attn.sampling_offsets.weight", "class_embed.weight",
                 "bbox_embed.layers.2.weight", "selector.enc_out_bbox_embed.layers.2.weight",
                 "label_enc.weight", "tgt_embed.weight", "neck.input_proj.3.0.weight"):
        g = named[name].grad
        assert g is not None and g.abs().sum() > 0, name
    assert named["backbone.body.layer1.0.conv1.weight"].grad is None
    assert not named["backbone.body.conv1.weight"].requires_grad


def test_eval_mode_postprocess_and_determinism():
    images, pad, src, _ = batch(128)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = build_detector(small("pathology")).eval()
        with torch.no_grad():
            outs.append(model(images, pad, src))
    assert torch.equal(outs[0]["pred_boxes"], outs[1]["pred_boxes"])
    out = outs[0]
    assert out["dn_meta"] is None and out["dn_outputs"] is None and out["pred_logits"].shape[-1] == 2
    dets = postprocess(out, torch.tensor([[480, 640], [100, 50]]), num_select=30)
    assert len(dets) == 2 and dets[0]["boxes"].shape == (30, 4)
    assert (dets[0]["scores"][:-1] >= dets[0]["scores"][1:]).all()
    assert set(dets[0]["labels"].tolist()) <= {0, 1}
    assert float(dets[1]["boxes"][:, 0::2].max()) <= 50 + 1e-3 and float(dets[1]["boxes"][:, 1::2].max()) <= 100 + 1e-3
    crit = build_criterion(small("pathology"))
    targets = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])},
               {"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}]
    losses = crit(out, targets)
    assert float(losses["loss_ce_dn"]) == 0.0 and torch.isfinite(losses["loss"])


def test_ffn_slot_contexts_and_aux_losses():
    CALLS.clear()
    torch.manual_seed(0)
    cfg = small()
    cfg.model.ffn.type = "test_recording"      # any registered name is accepted by build_ffn
    cfg.model.ffn.stages = ["encoder", "decoder"]
    model = build_detector(cfg).train()
    images, pad, src, targets = batch(128)
    shared = {"structure": torch.randn(2, 8, 4, 4)}
    out = model(images, pad, src, targets, shared)
    enc = [c for c in CALLS if c["stage"] == "encoder"]
    dec = [c for c in CALLS if c["stage"] == "decoder"]
    assert [c["layer"] for c in enc] == [0, 1] and [c["layer"] for c in dec] == [0, 1]
    n_tok = 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2
    assert enc[0]["x"] == (2, n_tok, 64) and enc[0]["ref"] == (2, n_tok, 2) and enc[0]["kpm"] == (2, n_tok)
    # reference points are normalised to each image's unpadded extent (the shared maps' frame):
    # image 0 is valid on 3/4 of the canvas width, so its padding tokens lie beyond x = 1
    assert enc[0]["ref_x_max0"] > 1.2
    assert enc[0]["ref_first"] == pytest.approx([0.5 / 16, 0.5 / 16])
    assert dec[1]["ref_x_max0"] <= 1.0
    q = 50 + out["dn_meta"]["pad_size"]
    assert dec[0]["x"] == (2, q, 64) and dec[0]["ref"] == (2, q, 2) and dec[0]["kpm"] is None
    assert dec[0]["ref_max"] <= 1.0 and dec[0]["src"] == [0, 3] and dec[0]["shared"] == ["structure"]
    # mean over the 4 layers of 0.5 * (1 + layer_idx) = (0.5 + 1.0 + 0.5 + 1.0) / 4
    assert torch.isclose(out["aux_ffn"]["test_aux"], torch.tensor(0.75))
    losses = build_criterion(cfg)(out, targets)
    assert torch.isclose(losses["test_aux"], torch.tensor(0.75))
    dense_total = losses["loss"] - losses["test_aux"]
    assert torch.isfinite(dense_total)


def test_bad_inputs_are_clear_errors():
    cfg = small()
    cfg.model.num_queries = 400
    model = build_detector(cfg)
    images, pad, src, targets = batch(64)
    with pytest.raises(ValueError, match="num_queries 400 exceeds"):
        model(images, pad, src)
    with pytest.raises(ValueError, match="pad_mask must be bool"):
        model(images, pad.float(), src)
    bad = [dict(t) for t in targets]
    bad[1]["labels"] = torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match="labels outside"):
        model.train()(images, pad, src, bad)
    bad[1] = {"labels": torch.zeros(1, dtype=torch.long), "boxes": torch.tensor([[0.5, 0.5, -0.1, 0.2]])}
    with pytest.raises(ValueError, match=r"targets\[1\] boxes must be finite"):
        model.train()(images, pad, src, bad)


def test_training_batch_without_any_box():
    torch.manual_seed(0)
    cfg = small()
    model, crit = build_detector(cfg).train(), build_criterion(cfg)
    images, pad, src, _ = batch(96)
    empty = [{"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}] * 2
    out = model(images, pad, src, empty)
    assert out["dn_meta"] is None
    losses = crit(out, empty)
    assert float(losses["loss_bbox"].detach()) == 0.0 and float(losses["loss_ce"].detach()) > 0
    losses["loss"].backward()
    assert model.class_embed.bias.grad.abs().sum() > 0


def test_single_stage_variant_runs():
    torch.manual_seed(0)
    cfg = small()
    cfg.model.two_stage = False
    model, crit = build_detector(cfg).train(), build_criterion(cfg)
    images, pad, src, targets = batch(64)
    out = model(images, pad, src, targets)
    assert out["interm_outputs"] is None and "loss_ce_interm" not in crit(out, targets)
    crit(out, targets)["loss"].backward()
    assert model.refpoint_embed.weight.grad is not None


def test_training_step_is_deterministic_given_a_seed():
    results = []
    for _ in range(2):
        torch.manual_seed(7)
        cfg = small()
        model, crit = build_detector(cfg).train(), build_criterion(cfg)
        images, pad, src, targets = batch(64)
        loss = crit(model(images, pad, src, targets), targets)["loss"]   # dn noise uses the seed too
        loss.backward()
        results.append((loss.detach(), model.class_embed.weight.grad.clone()))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])

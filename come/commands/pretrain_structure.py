"""`come pretrain-structure`: load a USFM checkpoint, or MIM-pretrain a small structure expert.

MIM runs on a synthetic corpus rendered with its own seed (experts.structure.pretrain_seed,
pretrain_images_per_source; come.experts.corpus) under <out>/corpus, never on benchmark images,
as USFM never saw the benchmark; so one structure expert serves every training set.
`--train COCO` pretrains on that file's images instead (explicit opt-in; the workflow never
passes it). Writes <out>/encoder.pt and <out>/structure_report.json; in MIM mode also
<out>/../mim_loss.png and <out>/../mim_reconstructions.png (results/experts/).
"""
from __future__ import annotations

from pathlib import Path

from come.commands import add_config_args
from come.config import dump_config, load_config


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--train", default="", help="MIM on this COCO file's images instead of the synthetic "
                        "corpus (opt-in: benchmark images here leak into every run using the expert)")
    parser.add_argument("--out", required=True, help="output folder (e.g. results/experts/structure)")


def run(args) -> int:
    import torch

    from come.data.coco import load_coco
    from come.experts import mim, structure
    from come.experts.corpus import render_corpus
    from come.experts.images import coco_image_paths, load_stack
    from come.utils.io import write_json

    cfg = load_config(args.config, args.overrides)
    cfg.validate()                         # incl. experts.structure.pretrain_seed != synth.seed
    torch.set_num_threads(max(1, cfg.train.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    sc = cfg.experts.structure
    arch = structure.arch_from_cfg(sc)
    torch.manual_seed(cfg.train.seed)
    vit = structure.build_vit(arch)
    if sc.checkpoint:
        report = structure.load_usfm_checkpoint(vit, sc.checkpoint)
        structure.export_encoder(vit, arch, out / "encoder.pt", source=f"checkpoint:{sc.checkpoint}", extra=report)
        write_json(out / "structure_report.json", {"mode": "checkpoint", "checkpoint": sc.checkpoint, **report})
        print(f"loaded {sc.checkpoint}: {len(report['missing'])} missing, "
              f"{len(report['unexpected'])} unexpected keys; wrote {out / 'encoder.pt'}")
        return 0
    if args.train:
        coco, root, what = load_coco(args.train), cfg.data.root, args.train
    else:
        root = out / "corpus"
        coco = render_corpus(cfg, sc.pretrain_seed, sc.pretrain_images_per_source, root, "structure expert")
        what = f"synthetic corpus (seed {sc.pretrain_seed}) {root}"
    images = load_stack(coco_image_paths(coco, root), sc.img_size)
    mim.locality_init(vit)
    model = mim.MIMModel(vit, sc.patch_size)
    hist = mim.pretrain(model, images, cfg)
    figs = out.parent
    mim.plot_loss(hist, figs / "mim_loss.png", sc.mim_visible_weight)
    mim.plot_reconstructions(model, images, cfg, figs / "mim_reconstructions.png")
    structure.export_encoder(vit, arch, out / "encoder.pt", source="mim",
                             extra={"epoch_losses": hist["epoch_losses"], "n_images": len(images), "images": what})
    write_json(out / "structure_report.json", {"mode": "mim", "images": what, "n_images": len(images), **hist})
    print(f"MIM on {len(images)} images of {what} in {hist['seconds']:.1f}s: loss {hist['epoch_losses'][0]:.4f} -> "
          f"{hist['epoch_losses'][-1]:.4f}; wrote {out / 'encoder.pt'}, {figs / 'mim_loss.png'}, "
          f"{figs / 'mim_reconstructions.png'}")
    return 0

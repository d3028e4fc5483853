"""COME's two shared experts and the frozen feature bank the detector uses.

- `prompts`: diagnosis prompts ("Diagnosis for {Organ} Ultrasound Image: {label}") per image.
- `semantic` / `semantic_train` / `losses`: the CLIP-style semantic expert (SEE), built with
  open_clip (embedded small model, BiomedCLIP by hub name, or a local open_clip directory),
  fine-tuned with InfoNCE or DHN-NCE, exported as a frozen image encoder.
- `structure` / `mim`: the BEiT/USFM-style structure expert (STE): USFM checkpoint loading with
  relative-position-bias remapping, or masked-image-modelling pretraining (spatial + frequency).
- `semantic_pretrain` / `corpus`: pretraining of the embedded experts on synthetic corpora with
  their own seeds (never benchmark images; the stand-ins for BiomedCLIP's and USFM's pretraining).
- `trainset`: the training-set key under which a run's semantic expert is fine-tuned (no leakage).
- `bank`: `load_shared_experts(cfg, device)` -> a frozen module giving, per UNPADDED image,
  {"structure" map, "semantic" dense map (or global vector), "semantic_prompt" test-prompt map}.
"""

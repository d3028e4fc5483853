"""Open-GroundingDINO on our DINO: text encoder (`text`), image-text fusion, language-guided
query selection, cross-modality decoder and contrastive head (`fusion`), the detector (`model`)."""

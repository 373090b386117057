"""Training M2U-Net with the paper's recipe: presets (:mod:`.presets`), loss (:mod:`.losses`), augmentations
(:mod:`.augment`), in-memory data (:mod:`.data`), the Fabric loop (:mod:`.engine`) and ``m2unet train`` (:mod:`.cli`).

Nothing is imported here, so that the ``m2unet`` command starts without loading torch.
"""

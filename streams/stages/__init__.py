"""The pipeline's stages as faust services: resize (NI), detect (LI/HI), draw (HI)."""

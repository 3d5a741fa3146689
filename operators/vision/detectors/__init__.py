"""Detector backends behind one interface (``base.Detector``): Haar (embedded), ONNX, Triton."""

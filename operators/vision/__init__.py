"""Image work: codec, resize, ``Detections``, detector backends, drawing, F1, scenes."""

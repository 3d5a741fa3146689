"""Pure, broker-free computation: image codec, resize, detectors, drawing, accuracy, models."""

"""Pure, broker-free computation, in two parts that never import each other.

- :mod:`tierflow.operators.vision`: the image work of the data plane (codec, resize, the
  one ``Detections`` type, detector backends, drawing, F1, generated scenes);
- :mod:`tierflow.operators.planning`: the control plane's mathematics (performance models
  of eq. 1-6, the quality-assignment and placement programs in HiGHS, workflow and
  scenario files, the control loop).
"""

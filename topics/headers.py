"""Every Kafka header name tierflow reads or writes, defined here and nowhere else.

Values are ASCII text (JSON for detections) so ``kcat -J`` shows them as they are.

=====================  ===================================================================
frame envelope         (:mod:`tierflow.topics.envelope`)
``tf-source``          source (camera) id, UTF-8
``tf-seq``             sequence number of the frame at its source
``tf-capture-ns``      capture time, nanoseconds since the Unix epoch
``tf-quality``         quality the frame was captured at (pixels of the side)
``tf-epoch``           assignment epoch the camera followed
``content-type``       ``image/jpeg``, ``image/png`` or ``application/x-tierflow-ndarray``
``tf-shape``           ``h,w[,c]`` (raw arrays only)
``tf-dtype``           numpy dtype name (raw arrays only)
``tf-t.<event>``       per-stage timestamp in ns, e.g. ``tf-t.resize.out``
``tf-busy.<stage>``    CPU ns the stage spent on this frame (its cost, without queueing)
``tf-origin``          ``WIDTHxHEIGHT`` of the source's own frames (the frame is their
                       letterbox: :class:`tierflow.operators.vision.resize.Letterbox`)
``tf-reference``       ``1`` on a reference copy: a frame of a ``golden`` source sent again
                       at the strongest quality, whose detections are that frame's truth
``tf-truth``           JSON: the true objects of the frame (generated scene or labels)
``tf-detections``      JSON: what the detector found, and the labels it can report
``tf-detector``        the detector's name (``haar:face``, ``onnx:yolov8n``)
deadletter             (:mod:`tierflow.streams.outcomes`): the original headers, plus
``tf-dl-topic``        the topic the record was consumed from
``tf-dl-partition``    its partition
``tf-dl-offset``       its offset
``tf-dl-stage``        the stage that gave up on it
``tf-dl-reason``       a stable category (a ``FrameProblem`` value, ``no-consumer``...)
``tf-dl-error``        a sentence for humans (at most 2 KiB)
``tf-dl-omitted``      what of the original was left out so that the letter fits the frame
                       limit: ``value:<bytes>`` and/or ``headers:<bytes>`` (the original
                       stays on ``tf-dl-topic`` at ``tf-dl-offset`` for its retention)
=====================  ===================================================================
"""

from __future__ import annotations

H_SOURCE = "tf-source"
H_SEQ = "tf-seq"
H_CAPTURE = "tf-capture-ns"
H_QUALITY = "tf-quality"
H_EPOCH = "tf-epoch"
H_CONTENT_TYPE = "content-type"
H_SHAPE = "tf-shape"
H_DTYPE = "tf-dtype"
H_STAMP_PREFIX = "tf-t."
H_BUSY_PREFIX = "tf-busy."
H_ORIGIN = "tf-origin"
H_REFERENCE = "tf-reference"
H_TRUTH = "tf-truth"
H_DETECTIONS = "tf-detections"
H_DETECTOR = "tf-detector"

H_DL_PREFIX = "tf-dl-"
H_DL_TOPIC = H_DL_PREFIX + "topic"
H_DL_PARTITION = H_DL_PREFIX + "partition"
H_DL_OFFSET = H_DL_PREFIX + "offset"
H_DL_STAGE = H_DL_PREFIX + "stage"
H_DL_REASON = H_DL_PREFIX + "reason"
H_DL_ERROR = H_DL_PREFIX + "error"
H_DL_OMITTED = H_DL_PREFIX + "omitted"

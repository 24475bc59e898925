"""Intent model training, calibration, evaluation and artifact I/O.

Import the submodules directly (``finetune.intent.train``...); this package imports nothing so
that the server can load ``finetune.intent.classifier`` without pulling training in.
"""

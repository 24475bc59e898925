"""Intent model training, calibration, evaluation and artifact I/O.

Import the submodules directly (``finetune.intent.train``...); this package imports nothing so
that the runtime (``bot.intent``) can use ``finetune.intent.artifact`` without pulling training in.
"""

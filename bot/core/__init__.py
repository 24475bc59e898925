"""What every package may import: the machine, the encoders' arithmetic, the bundled models.

``retrieval``, ``connectors`` and ``finetune`` import nothing of ``bot`` but this package and
``bot.errors``; in turn this package imports nothing of the project but ``bot.errors``
(``tests/test_dependencies.py`` checks both). It lives under ``bot/`` only to keep the top
level to the four packages.
"""

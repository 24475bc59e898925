"""The four packages pass mypy, and the modules the project promises strict typing get it.

The check is part of the suite so that CI, which runs exactly ``make test``, runs it; ``make lint``
runs the same command. Its configuration is ``[tool.mypy]`` in pyproject.toml.
"""

from __future__ import annotations

import io
from pathlib import Path

from tests import head_start

ROOT = Path(__file__).resolve().parent.parent
# Modules that must be checked as `mypy --strict` would check them.
STRICT = (
    "bot.policy",
    "bot.storage",
    "bot.storage.db",
    "connectors",
    "connectors.telegram.connector",
)


def test_packages_pass_mypy() -> None:
    # Started when the tests were collected, beside the first tests (tests/head_start.py).
    rc, output = head_start.finish("mypy", *head_start.MYPY, timeout=600)
    assert rc == 0, f"mypy found problems:\n{output}"


def test_strict_modules_get_every_flag_of_mypy_strict() -> None:
    # mypy accepts `strict` only for the whole run, so pyproject.toml spells its flags out per
    # module; mypy's own list of them catches a flag left out or one a new release adds.
    from mypy.config_parser import parse_config_file
    from mypy.main import define_options
    from mypy.options import Options

    _, _, strict_flags = define_options()
    options = Options()
    out = io.StringIO()
    parse_config_file(options, lambda: None, str(ROOT / "pyproject.toml"), out, out)
    assert options.files == ["bot", "retrieval", "finetune", "connectors"], out.getvalue()
    for module in STRICT:
        module_options = options.clone_for_module(module)
        missing = [flag for flag, value in strict_flags if getattr(module_options, flag) != value]
        assert not missing, f"{module} is not checked with {missing}"
    lenient = options.clone_for_module("bot.pipeline")
    assert not lenient.disallow_untyped_defs  # the override names modules, not everything

"""``python -m bot`` runs the deskbot CLI."""

from bot.cli import main

main()

"""``python -m selflearn`` runs the CLI."""

from selflearn.cli import main

main()

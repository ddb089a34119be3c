"""``python -m selflearn.cli`` runs the CLI (as ``python -m selflearn`` does)."""

from selflearn.cli import main

main()

"""``python -m inferwatch``: the ``inferwatch`` command."""

from inferwatch.cli import main

main()

"""``python -m eventspype.cli``: the ``eventspype`` command."""

from eventspype.cli.app import main

main()

"""The subcommands of ``eventspype``, one module each."""

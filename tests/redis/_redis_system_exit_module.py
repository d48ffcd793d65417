"""Importing this module raises SystemExit, as ``unittest.__main__`` does: the
listener must survive a message that names one of its classes."""

raise SystemExit(3)

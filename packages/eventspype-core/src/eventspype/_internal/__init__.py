"""Helpers shared by the eventspype distributions, and by them only.

Nothing here is public API: names, signatures and behaviour may change in any
release of eventspype-core. Sibling distributions (eventspype-redis,
eventspype-testing, ...) import from here instead of keeping a copy of their
own, and pin eventspype-core with a compatible range.
"""

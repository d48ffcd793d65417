"""Subscribers: the EventSubscriber interface and ready-made subscribers."""

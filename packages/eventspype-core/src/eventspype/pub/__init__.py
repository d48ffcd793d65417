"""Publishers: EventPublication, EventPublisher and MultiPublisher."""

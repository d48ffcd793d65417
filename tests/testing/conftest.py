"""Tests of eventspype-testing (core + serializers + testing installed; the
Redis parts are tested in tests/integration)."""

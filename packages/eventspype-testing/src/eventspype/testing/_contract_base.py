"""The flags, fixtures, hooks and helpers of the conformance kit's contract
(the rules themselves are in :mod:`eventspype.testing.conformance`)."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest

from eventspype.testing._contract_support import wait_until

__all__ = ["ContractBase"]


class ContractBase:
    """What :class:`~eventspype.testing.conformance.BrokerContract` subclasses
    override or set; see there."""

    delivers_synchronously: ClassVar[bool] = True
    ordered: ClassVar[bool] = True
    checks_publication_class: ClassVar[bool] = False
    raises_subscriber_errors: ClassVar[bool] = False
    refuses_after_close: ClassVar[bool] = True
    cross_process: ClassVar[bool] = False
    durable: ClassVar[bool] = False
    max_deliveries: ClassVar[int] = 5
    delivery_timeout: ClassVar[float] = 10.0

    # --- what a subclass overrides ----------------------------------------------

    @pytest.fixture
    def broker(self) -> Any:
        """A fresh broker for one test (override; close it after the test)."""
        pytest.fail(f"{type(self).__name__} must override the `broker` fixture")

    @pytest.fixture
    def peer_broker(self) -> Any:
        """Another broker on the same transport as ``broker`` (cross_process)."""
        pytest.fail(f"{type(self).__name__} sets cross_process: override `peer_broker`")

    def subscribed(self, broker: Any) -> None:
        """Called after subscribing, before publishing: a broker whose
        ``subscribe()`` returns before the transport confirmed it waits here
        (``AsyncRedisBroker.wait_until_subscribed``). Events published before
        a subscription is in place may be missed: that is not a failure."""

    def close_broker(self, broker: Any) -> None:
        """Close ``broker`` (``close()`` by default; ``aclose()`` brokers
        override this). Skips the close test when the broker has no
        ``close()``: it holds no resources."""
        close = getattr(broker, "close", None)
        if not callable(close):
            pytest.skip("the broker has no close(): it holds no resources")
        close()

    def pass_time(self, broker: Any) -> None:
        """Called while the contract waits; a broker with a fake clock moves
        it here (``TestBroker``'s stream emulation does)."""

    def dead_letters(self, broker: Any, channel: str) -> list[Any]:
        """The dead letters of ``channel`` (durable brokers)."""
        return list(broker.dead_letters(channel))

    # --- helpers --------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def threads_at_start(self) -> set[threading.Thread]:
        """The threads alive before the ``broker`` fixture ran (autouse
        fixtures come first; a higher-scoped fixture's threads are in it)."""
        return set(threading.enumerate())

    def _eventually(self, broker: Any, condition: Any, what: str) -> None:
        if self.delivers_synchronously:
            assert condition(), what
            return

        def check() -> bool:
            self.pass_time(broker)
            return bool(condition())

        wait_until(check, self.delivery_timeout, what)

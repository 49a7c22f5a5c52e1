"""Durable delivery: the event store, the retry policy and the rate governor."""

from destination.delivery.governor import RateGovernor, RateWindow, default_windows
from destination.delivery.retry import RetryPolicy
from destination.delivery.store import (
    Attempt,
    DeadLetter,
    NewEvent,
    QueuedEvent,
    Store,
    StoreClosedError,
    StoredEvent,
    StoreError,
    UnsupportedStoreURLError,
)
from destination.delivery.stores import open_store

__all__ = [
    "Attempt",
    "DeadLetter",
    "NewEvent",
    "QueuedEvent",
    "RateGovernor",
    "RateWindow",
    "RetryPolicy",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoredEvent",
    "UnsupportedStoreURLError",
    "default_windows",
    "open_store",
]

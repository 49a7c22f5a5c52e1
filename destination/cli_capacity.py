"""`gainsight-destination capacity`: the capacity forecast (DESIGN §6) from the store, as
GET /admin/capacity gives it, without the service running."""

from __future__ import annotations

from typing import TYPE_CHECKING

from destination.cli_common import (
    DEFAULT_STORE,
    DestinationFilter,
    DestinationsOption,
    StoreOption,
    echo_json,
    fail,
    with_store,
)

if TYPE_CHECKING:
    from destination.delivery.store import Store


def capacity_command(
    store: StoreOption = DEFAULT_STORE,
    destinations: DestinationsOption = None,
    destination: DestinationFilter = None,
) -> None:
    """One JSON line per destination: does its traffic fit the daily budget, when its backlog
    clears or how fast it grows, and which events cost the calls (with the lever that would cut
    them). Reads the store, the destinations file (each one's tenant) and the GSD_RATE_LIMIT_*
    and GSD_MAX_AGE_SECONDS settings."""
    from pydantic import ValidationError

    from destination.capacity_facts import capacity
    from destination.config import load_destination_configs
    from destination.errors import ConfigError
    from destination.settings import Settings

    if destinations is None:
        raise fail("capacity needs the destinations file (--destinations or GSD_DESTINATIONS)")
    try:
        configured = load_destination_configs(destinations)
        settings = Settings()
    except ConfigError as exc:
        raise fail(exc.message) from None
    except ValidationError as exc:
        raise fail(f"invalid GSD_ setting: {exc.errors()[0]['loc'][0]}") from None
    if destination is not None and destination not in configured:
        raise fail(f"no destination with id {destination!r} in {destinations}")

    async def work(opened: Store) -> None:
        for answer in await capacity(opened, configured, settings):
            if destination is None or answer["destination"] == destination:
                echo_json(answer)

    with_store(store, work)

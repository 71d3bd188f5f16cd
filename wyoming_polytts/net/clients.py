"""What clients hold open, counted per client address and in total, on both front doors.

A client address (the peer's IP; every Unix-socket or stdio client counts as one)
may hold at most ``limits.max_connections_per_client`` connections and
``limits.max_streams_per_client`` Wyoming streams, and all clients together at most
``limits.max_connections`` and ``limits.max_streams``. The one over a cap is refused
with a clear error, so one misbehaving client cannot take every place.
"""

from __future__ import annotations

from collections import Counter

from ..config import LimitsSettings
from ..errors import PolyttsError, TooManyConnectionsError, TooManyStreamsError
from .in_flight import InFlight


class Place:
    """One connection or stream a client holds; :meth:`release` gives it back (once)."""

    def __init__(self, places: Places, client: str) -> None:
        self._places = places
        self.client = client
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._places.give_back(self.client)


class Places:
    """Places of one kind (connections or streams), capped in total and per client."""

    def __init__(
        self, what: str, total: int, per_client: int, error: type[PolyttsError], key: str
    ) -> None:
        """``key`` names the configuration of the caps in error messages (``limits.max_...``)."""
        self._what = what
        self._total = total
        self._per_client = per_client
        self._error = error
        self._key = key
        self._held: Counter[str] = Counter()

    def take(self, client: str) -> Place:
        """A place for ``client``; raises the configured error when a cap is reached."""
        if self._held[client] >= self._per_client:
            raise self._error(
                f"too many {self._what} from {client}: at most {self._per_client} per client "
                f"address ({self._key}_per_client); close one and try again"
            )
        if self.total >= self._total:
            raise self._error(
                f"the server holds {self.total} {self._what}, its limit ({self._key}); "
                "try again shortly"
            )
        self._held[client] += 1
        return Place(self, client)

    def give_back(self, client: str) -> None:
        self._held[client] -= 1
        if self._held[client] <= 0:
            del self._held[client]

    @property
    def total(self) -> int:
        return sum(self._held.values())

    def held_by(self, client: str) -> int:
        return self._held[client]


class Clients:
    """The places and requests of every client, shared by both front doors."""

    def __init__(self, limits: LimitsSettings) -> None:
        self.limits = limits
        self.connections = Places(
            "connections",
            limits.max_connections,
            limits.max_connections_per_client,
            TooManyConnectionsError,
            "limits.max_connections",
        )
        self.streams = Places(
            "open streams",
            limits.max_streams,
            limits.max_streams_per_client,
            TooManyStreamsError,
            "limits.max_streams",
        )
        self.in_flight = InFlight()
        """Requests being answered, which a shutdown lets finish and then cuts off."""

    def held(self) -> dict[str, int]:
        """Connections and streams held open now, for the metrics."""
        return {"connections": self.connections.total, "streams": self.streams.total}


def client_address(peer: object) -> str:
    """The address a peer is counted under: its IP, or ``local`` for Unix sockets and pipes."""
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return "local"

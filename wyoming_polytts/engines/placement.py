"""Where an engine runs: in this process (``local``), or as Ray Serve replicas (``ray``).

The options here are plain dataclasses, read from the config without Ray installed;
:mod:`.ray` is imported only when an engine is placed on a cluster. Every key is
documented in the repository's ``config.yaml`` and docs/ray.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError

Placement = Literal["local", "ray"]


@dataclass(frozen=True)
class RaySettings:
    """The server's Ray cluster (the top-level ``ray`` section)."""

    address: str | None = None
    """``host:port`` of the cluster's head (its GCS); None: Ray is not used."""

    namespace: str = "polytts"
    """Ray namespace of the server, and the prefix of its Serve application names, so
    that two servers can share one cluster."""

    def __post_init__(self) -> None:
        if self.address is not None:
            host, colon, port = self.address.rpartition(":")
            if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"ray.address: expected host:port of the head, got {self.address!r}"
                )
        if not self.namespace or not self.namespace.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"ray.namespace: expected letters, digits, - and _, got {self.namespace!r}"
            )


@dataclass(frozen=True)
class RayAutoscaling:
    """Ray Serve's autoscaling of one engine's replicas while it is loaded."""

    min_replicas: int = 1
    """Replicas kept while loaded (at least 1: going to zero is ``idle_unload_after``'s)."""

    max_replicas: int = 2
    target_ongoing_requests: float | None = None
    """Requests per replica Serve aims at (running and queued); None: Serve's default (2)."""


@dataclass(frozen=True)
class RayPlacement:
    """How an engine placed on Ray runs (its ``ray`` options)."""

    num_replicas: int | None = None
    """Replicas while loaded; None: 1, or ``autoscaling`` decides."""

    autoscaling: RayAutoscaling | None = None
    num_cpus: float | None = None
    """CPUs each replica reserves (Ray's logical CPUs); None: Ray Serve's default (1)."""

    num_gpus: float = 0.0
    """GPUs each replica reserves; 0.5 lets two replicas share one card."""

    resources: dict[str, float] = field(default_factory=dict)
    """Custom resources each replica reserves, e.g. ``{box_b: 1}`` to pin it to the node
    started with ``--resources '{"box_b": 1}'``."""

    max_ongoing_requests: int | None = None
    """Sentences one replica takes at once (None: 8); its engine works on ``concurrency``
    of them at a time, taking turns between pieces as the pool does."""

    refresh_interval: float = 30.0
    """Seconds between two reads of the engine's voices on the cluster."""

    @property
    def max_replicas(self) -> int:
        """Replicas the engine may have at most."""
        if self.autoscaling is not None:
            return self.autoscaling.max_replicas
        return self.num_replicas or 1

    def requirements(self) -> dict[str, float]:
        """What one replica needs of a node (Ray's resource names)."""
        needs = dict(self.resources)
        if self.num_gpus:
            needs["GPU"] = self.num_gpus
        if self.num_cpus:
            needs["CPU"] = self.num_cpus
        return needs


def check_placement(
    key: str, placement: Placement, options: RayPlacement, cluster: RaySettings
) -> None:
    """Refuse ``ray`` options that cannot work; ``key`` names the engine's section."""
    if placement == "local":
        return
    if cluster.address is None:
        raise ConfigError(f"{key}.placement: ray needs the address of a cluster in ray.address")
    scaling = options.autoscaling
    if options.num_replicas is not None and scaling is not None:
        raise ConfigError(f"{key}.ray: give num_replicas or autoscaling, not both")
    if options.num_replicas is not None and options.num_replicas < 1:
        raise ConfigError(f"{key}.ray.num_replicas: expected 1 or more, got {options.num_replicas}")
    if scaling is not None:
        if scaling.min_replicas < 1:
            raise ConfigError(
                f"{key}.ray.autoscaling.min_replicas: expected 1 or more (idle_unload_after "
                f"takes an engine to zero replicas), got {scaling.min_replicas}"
            )
        if scaling.max_replicas < scaling.min_replicas:
            raise ConfigError(f"{key}.ray.autoscaling.max_replicas: expected min_replicas or more")
        target = scaling.target_ongoing_requests
        if target is not None and target <= 0:
            raise ConfigError(f"{key}.ray.autoscaling.target_ongoing_requests: expected above 0")
    amounts = {
        "num_cpus": options.num_cpus or 0.0,
        "num_gpus": options.num_gpus,
        **{f"resources.{name}": amount for name, amount in options.resources.items()},
    }
    for name, amount in amounts.items():
        if amount < 0:
            raise ConfigError(f"{key}.ray.{name}: expected 0 or more, got {amount}")
    ongoing = options.max_ongoing_requests
    if ongoing is not None and ongoing < 1:
        raise ConfigError(f"{key}.ray.max_ongoing_requests: expected 1 or more, got {ongoing}")
    if options.refresh_interval <= 0:
        raise ConfigError(f"{key}.ray.refresh_interval: expected seconds above 0")

"""The server's connection to its Ray cluster, and each engine's Serve application on it.

The server joins the cluster as a Ray driver once (:class:`Cluster`), with Serve's
HTTP proxy disabled: requests reach replicas through deployment handles only.
Each engine on Ray is one Serve application named ``<namespace>-<section>``
(:class:`Deployment`), deployed when the engine loads and deleted when it
unloads. Everything here blocks: the pool calls it in worker threads, the
watcher in its own.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ...errors import EngineUnavailableError, PolyttsError, SynthesisError
from ..base import VoiceInfo
from ..placement import RayPlacement, RaySettings
from .replica import EngineReplica, ReplicaSpec, describe_voices
from .voices import VoiceContent

_LOGGER = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 5.0
"""Seconds the head's port may take to accept a connection (Ray's own join retries for
minutes when nothing answers)."""

_PICKLE_RACE = "is not registered for pickle by value"
"""Ray Serve registers a module with cloudpickle around each router configuration it
serializes and unregisters it afterwards, without a lock: when a handle's router (in
Serve's own thread) does so while a deployment is being built, one of them fails with
a ValueError saying this. Nothing was deployed then, so building it again is safe."""

_DEPLOY_ATTEMPTS = 3

_DESCRIBE_TIMEOUT = 120.0
"""Seconds a listing of an engine's voices may take on a node (a first one imports the
engine's libraries there)."""


class Cluster:
    """The Ray cluster of the ``ray`` section, joined on first use."""

    def __init__(self, settings: RaySettings) -> None:
        assert settings.address is not None
        self.settings = settings
        self.address = settings.address
        self._lock = threading.Lock()

    def connect(self) -> None:
        """Join the cluster (once); :class:`EngineUnavailableError` when it cannot be reached."""
        with self._lock:
            if ray.is_initialized():
                return
            host, _, port = self.address.rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT).close()
            except OSError as err:
                raise EngineUnavailableError(
                    f"the Ray cluster at {self.address} does not answer ({err.strerror or err})"
                ) from err
            try:
                ray.init(
                    address=self.address,
                    namespace=self.settings.namespace,
                    log_to_driver=False,
                    configure_logging=False,
                )
                serve.start(proxy_location="Disabled")
            except (RayError, ConnectionError, RuntimeError, ValueError) as err:
                raise EngineUnavailableError(
                    f"cannot join the Ray cluster at {self.address}: {err}"
                ) from err
            _LOGGER.info("Joined the Ray cluster at %s", self.address)

    def deployment(self, section: str, placement: RayPlacement) -> Deployment:
        return Deployment(f"{self.settings.namespace}-{section}", section, placement)

    def node_offering(self, needs: dict[str, float]) -> str:
        """The id of a live node that has (in total) what one replica needs."""
        for node in ray.nodes():
            offers = node.get("Resources", {})
            if node.get("Alive") and all(offers.get(k, 0.0) >= v for k, v in needs.items()):
                return str(node["NodeID"])
        raise EngineUnavailableError(
            f"no node of the Ray cluster at {self.address} offers {_resources(needs)}"
        )

    def describe(
        self, spec: ReplicaSpec, needs: dict[str, float], library: list[VoiceContent]
    ) -> list[VoiceInfo]:
        """The engine's voices as a node where its replicas can run lists them."""
        self.connect()
        where = NodeAffinitySchedulingStrategy(self.node_offering(needs), soft=False)
        task = describe_voices.options(num_cpus=0, scheduling_strategy=where)
        ref = task.remote(spec, library)
        try:
            voices: list[VoiceInfo] = ray.get(ref, timeout=_DESCRIBE_TIMEOUT)
        except GetTimeoutError as err:
            ray.cancel(ref, force=True)
            raise EngineUnavailableError(
                f"listing the voices of engine '{spec.section}' on the Ray cluster took more "
                f"than {_DESCRIBE_TIMEOUT:g} s"
            ) from err
        except RayError as err:
            raise remote_failure(spec.section, err) from err
        return voices


@dataclass(frozen=True)
class ReplicaStates:
    """An engine's Serve application as the controller reports it."""

    status: str
    """The deployment's status: ``UPDATING``, ``HEALTHY``, ``UNHEALTHY``, ``UPSCALING``..."""

    replicas: dict[str, int]
    """Replicas by state (``RUNNING``, ``STARTING``, ``RECOVERING``...)."""

    message: str
    """What Serve says about it (why it is unhealthy), or nothing."""

    @property
    def healthy(self) -> bool:
        """Every replica it wants is running (or it is scaling)."""
        return self.status in ("HEALTHY", "UPSCALING", "DOWNSCALING")

    @property
    def failing(self) -> bool:
        """A replica died or failed its health check, or the application failed."""
        return self.status in ("UNHEALTHY", "DEPLOY_FAILED")


@dataclass(frozen=True)
class Deployment:
    """One engine's Serve application."""

    app: str
    section: str
    placement: RayPlacement

    def options(self, concurrency: int) -> dict[str, Any]:
        """Serve's options of the deployment; ``concurrency``: requests per replica."""
        placement = self.placement
        actor: dict[str, Any] = {"num_gpus": placement.num_gpus, "resources": placement.resources}
        if placement.num_cpus is not None:
            actor["num_cpus"] = placement.num_cpus
        options: dict[str, Any] = {
            "name": self.section,
            "ray_actor_options": actor,
            "max_ongoing_requests": concurrency,
            # A load that fails fails the engine (the pool retries after load_retry_after)
            # instead of being tried again and again; replicas that die later still return.
            "max_constructor_retry_count": placement.max_replicas,
            "logging_config": {"enable_access_log": False},
        }
        scaling = placement.autoscaling
        if scaling is None:
            options["num_replicas"] = placement.num_replicas or 1
        else:
            options["autoscaling_config"] = {
                "min_replicas": scaling.min_replicas,
                "max_replicas": scaling.max_replicas,
                **(
                    {"target_ongoing_requests": scaling.target_ongoing_requests}
                    if scaling.target_ongoing_requests is not None
                    else {}
                ),
            }
        return options

    def deploy(self, spec: ReplicaSpec, concurrency: int) -> Any:
        """Deploy and wait until every replica has loaded the engine; the handle.

        Raises :class:`EngineUnavailableError` with the replicas' own error when they
        fail to start (the application is then deleted).
        """
        attempt = 1
        while True:
            try:
                return self._run(spec, concurrency)
            except ValueError as err:
                if _PICKLE_RACE not in str(err) or attempt == _DEPLOY_ATTEMPTS:
                    raise
                _LOGGER.info("Deploying %s again after Ray Serve's race: %s", self.app, err)
                attempt += 1

    def _run(self, spec: ReplicaSpec, concurrency: int) -> Any:
        replica = serve.deployment(**self.options(concurrency))(EngineReplica)
        try:
            return serve.run(replica.bind(spec), name=self.app, route_prefix=None)
        except RuntimeError as err:  # DEPLOY_FAILED: the reason is in the deployment status
            states = self.states()
            reason = _last_line(states.message) if states is not None else str(err)
            self.delete()
            raise EngineUnavailableError(
                f"engine '{self.section}' failed to start on Ray: {reason}"
            ) from err

    def delete(self) -> None:
        """Delete the application: its replicas stop and free their memory."""
        serve.delete(self.app)

    def states(self) -> ReplicaStates | None:
        """What the controller says now; None when the application does not exist."""
        application = serve.status().applications.get(self.app)
        if application is None:
            return None
        deployment = application.deployments.get(self.section)
        if deployment is None:
            return ReplicaStates(str(application.status.value), {}, application.message)
        return ReplicaStates(
            str(deployment.status.value),
            {str(state): count for state, count in deployment.replica_states.items()},
            deployment.message,
        )


def remote_failure(section: str, err: Exception) -> PolyttsError:
    """The error a client reads for what a Ray call raised: the engine's own error as it
    raised it in the replica, else one naming what happened on the cluster."""
    if isinstance(err, RayTaskError) and isinstance(err.cause, PolyttsError):
        return err.cause
    if isinstance(err, RayActorError):
        _LOGGER.warning("Engine %s: its Ray replica died during a request", section)
        return SynthesisError(
            f"engine '{section}': its Ray replica died during the request; "
            "Ray Serve starts another, try again"
        )
    if isinstance(err, RayTaskError):
        cause = type(err.cause).__name__ if err.cause is not None else "an error"
        _LOGGER.warning("Engine %s failed on the Ray cluster: %s", section, _last_line(str(err)))
        return SynthesisError(
            f"engine '{section}' failed in its Ray replica ({cause}); see the replica's log"
        )
    return SynthesisError(
        f"engine '{section}' on Ray: {_last_line(str(err)) or type(err).__name__}"
    )


def _last_line(text: str) -> str:
    """The last line of a traceback Ray reports: the exception and its message."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def _resources(needs: dict[str, float]) -> str:
    if not needs:
        return "a place to run"
    return ", ".join(f"{name} {amount:g}" for name, amount in sorted(needs.items()))

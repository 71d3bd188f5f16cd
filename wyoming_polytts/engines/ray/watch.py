"""What an engine on Ray shows, kept fresh in a thread of its own.

The catalog asks for voices, and ``/health`` and ``/metrics`` for replicas, on the
event loop, which must never wait for the cluster. A :class:`Watcher` asks the
cluster instead, in a daemon thread: the replicas' states every few seconds while
the engine is deployed, its voices every ``refresh_interval`` seconds and
whenever asked (the voice library changed, the engine loaded). The answers are
kept for the loop to read; a change of voices is announced (``voices_changed``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..base import VoiceInfo
from .cluster import Deployment, ReplicaStates

_LOGGER = logging.getLogger(__name__)

_STATUS_INTERVAL = 2.0
"""Seconds between two reads of the replicas' states while deployed."""


class Watcher:
    """Reads one engine's replicas and voices from the cluster, off the event loop."""

    def __init__(
        self,
        deployment: Deployment,
        list_voices: Callable[[], list[VoiceInfo]],
        refresh_interval: float,
        voices_changed: Callable[[], None],
    ) -> None:
        """``list_voices`` reads the voices on the cluster (blocking, raising what went
        wrong); ``voices_changed`` is called when its answer, or the problem, changes."""
        self._deployment = deployment
        self._list_voices = list_voices
        self._interval = refresh_interval
        self._voices_changed = voices_changed
        self.voices: list[VoiceInfo] = []
        """The engine's voices as last listed."""

        self.problem: str | None = None
        """Why the last listing failed; None when it worked."""

        self.states: ReplicaStates | None = None
        """The replicas as last read; None while not deployed."""

        self._deployed = False
        self._voices_wanted = True
        self._wake = threading.Event()
        self._listed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wait: float) -> None:
        """Start watching (once), and wait at most ``wait`` seconds for the first listing."""
        if self._thread is None:
            name = f"polytts-ray-{self._deployment.section}"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()
        self._listed.wait(wait)

    def deployed(self, deployed: bool) -> None:
        """The engine's application exists from now on (loading), or no longer."""
        self._deployed = deployed
        if not deployed:
            self.states = None
        self.refresh()

    def refresh(self, voices: bool = False) -> None:
        """Read again now; the voices too when ``voices``."""
        self._voices_wanted = self._voices_wanted or voices
        self._wake.set()

    def _run(self) -> None:
        next_listing = 0.0
        while True:
            if self._voices_wanted or time.monotonic() >= next_listing:
                self._voices_wanted = False
                self._list()
                next_listing = time.monotonic() + self._interval
            if self._deployed:
                self._read_states()
            wait = next_listing - time.monotonic()
            if self._deployed:
                wait = min(wait, _STATUS_INTERVAL)
            self._wake.wait(max(wait, 0.0))
            self._wake.clear()

    def _list(self) -> None:
        try:
            voices, problem = self._list_voices(), None
        except Exception as err:  # the cluster, a node or the engine: kept as the problem
            voices, problem = self.voices, str(err) or type(err).__name__
        if problem is not None and problem != self.problem:
            _LOGGER.warning(
                "Engine %s: cannot list its voices on Ray: %s", self._deployment.section, problem
            )
        changed = voices != self.voices or problem != self.problem
        self.voices, self.problem = voices, problem
        self._listed.set()
        if changed:
            self._voices_changed()

    def _read_states(self) -> None:
        try:
            states = self._deployment.states()
        except Exception as err:  # the controller did not answer: keep the last answer
            _LOGGER.debug("Engine %s: no status from Ray Serve: %s", self._deployment.section, err)
            return
        if self._deployed:  # not undeployed meanwhile
            if states != self.states and states is not None and states.failing:
                _LOGGER.warning(
                    "Engine %s on Ray is %s: %s %s",
                    self._deployment.section,
                    states.status,
                    states.replicas,
                    states.message,
                )
            self.states = states

"""Zeroconf: a server on every interface is announced with a real address, never 0.0.0.0."""

from __future__ import annotations

from wyoming.zeroconf import HomeAssistantZeroconf

from wyoming_polytts.server import announced_host


def test_every_interface_announces_a_real_address() -> None:
    assert announced_host("tcp://0.0.0.0:10200") is None
    assert announced_host("tcp://[::]:10200") is None
    assert announced_host("tcp://192.168.1.5:10200") == "192.168.1.5"
    detected = HomeAssistantZeroconf(port=10200, name="probe", host=None)
    assert detected.host not in ("0.0.0.0", "", None)

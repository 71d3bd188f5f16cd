"""The one way tests and the benchmark start our server (``bench.server_process``): both
front doors on free loopback ports whatever the configuration says, ready once it answers
``describe`` and ``/health`` says its engines are loaded, stopped with SIGTERM.

The options-file path is in ``tests/test_addon_options.py``; ``--uri stdio://`` in
``tests/test_stdio.py``.
"""

from __future__ import annotations

from pathlib import Path

from wyoming_polytts.const import EXIT_CONFIG_ERROR

from .helpers import (
    ServerProcess,
    default_ports_held,
    describe,
    get_json,
    listening,
    run_cli,
)


async def test_default_configuration_beside_a_server_on_the_default_ports(
    tmp_path: Path,
) -> None:
    """The defaults listen on 0.0.0.0:10200 and 127.0.0.1:8880; held by another server,
    the test's server takes free loopback ports instead."""
    with default_ports_held():
        server = ServerProcess(tmp_path).start()
        try:
            assert "Ready: " in server.log()  # what the tests waited for before
            health = await get_json(server, "/health")
            assert health["ready"] and health["engines"]["piper"]["state"] == "loaded"
            (program,) = (await describe(server.port)).tts
            assert [voice.name for voice in program.voices if voice.installed]
            expected = {("127.0.0.1", server.port), ("127.0.0.1", server.http_port)}
            assert listening(server.pid) == expected
        finally:
            assert server.stop() == 0, server.log()


def test_bad_http_port_is_a_config_error() -> None:
    result = run_cli("--http-port", "0")
    assert result.returncode == EXIT_CONFIG_ERROR
    assert result.stderr.strip() == (
        "wyoming-polytts: config error: openai.port: expected a port from 1 to 65535, got 0"
    )

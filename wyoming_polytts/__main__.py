"""Command line: ``wyoming-polytts`` / ``python -m wyoming_polytts``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import replace
from importlib import resources
from pathlib import Path

from . import __version__
from .addon_options import load_options_file
from .config import Config, load_config
from .const import EXIT_CONFIG_ERROR
from .errors import ConfigError
from .logs import configure_logging
from .server import serve
from .shutdown import exit_process, handle_signals

_LOGGER = logging.getLogger(__name__)

EXAMPLE_CONFIG = "example-config.yaml"
"""The documented configuration (every option with its default) inside the package: the
repository's config.yaml, which ``--print-config`` prints."""


def _zeroconf_env(value: str) -> str | None:
    """POLYTTS_ZEROCONF: empty or 0/false is off, 1/true is on, anything else a name."""
    if value.lower() in ("", "0", "false", "no"):
        return None
    return "" if value.lower() in ("1", "true", "yes") else value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wyoming-polytts",
        description="Many TTS engines behind one Wyoming (and OpenAI-compatible) server.",
    )
    env = os.environ.get
    parser.add_argument(
        "--config",
        type=Path,
        default=env("POLYTTS_CONFIG") or None,
        help="YAML config file (env POLYTTS_CONFIG); without it, the defaults",
    )
    parser.add_argument(
        "--options-file",
        type=Path,
        default=env("POLYTTS_OPTIONS_FILE") or None,
        help="Home Assistant add-on options (/data/options.json) instead of --config "
        "(env POLYTTS_OPTIONS_FILE)",
    )
    parser.add_argument(
        "--uri", default=env("POLYTTS_URI"), help="Wyoming URI, e.g. tcp://0.0.0.0:10200"
    )
    parser.add_argument(
        "--http-host",
        default=env("POLYTTS_HTTP_HOST") or None,
        help="address of the OpenAI-compatible HTTP API, over openai.host (env POLYTTS_HTTP_HOST)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=env("POLYTTS_HTTP_PORT") or None,
        help="port of the OpenAI-compatible HTTP API, over openai.port (env POLYTTS_HTTP_PORT)",
    )
    parser.add_argument(
        "--zeroconf",
        nargs="?",
        const="",
        default=_zeroconf_env(env("POLYTTS_ZEROCONF", "")),
        metavar="NAME",
        help="announce over mDNS, optionally under NAME (env POLYTTS_ZEROCONF=1 or =NAME)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=env("POLYTTS_DEBUG", "") not in ("", "0", "false"),
        help="log debug messages (env POLYTTS_DEBUG=1)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the documented configuration (every option with its default) and exit",
    )
    parser.add_argument("--version", action="version", version=__version__)
    return parser


def _configure(args: argparse.Namespace) -> Config:
    if args.options_file is not None:
        if args.config is not None:
            raise ConfigError("--config and --options-file exclude each other; give one")
        config = load_options_file(args.options_file)
    else:
        config = load_config(args.config)
    wyoming = config.settings.wyoming
    if args.uri:
        wyoming.uri = args.uri
    listen = {"host": args.http_host, "port": args.http_port}
    if changes := {key: value for key, value in listen.items() if value is not None}:
        config.settings.openai = replace(config.settings.openai, **changes)  # checked again
    if args.zeroconf is not None:
        wyoming.zeroconf = True
        wyoming.zeroconf_name = args.zeroconf or wyoming.zeroconf_name
    if args.debug:
        config.settings.log_level = "DEBUG"
    return config


async def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.print_config:
        example = resources.files("wyoming_polytts") / EXAMPLE_CONFIG
        sys.stdout.write(example.read_text(encoding="utf-8"))
        return 0
    try:
        config = _configure(args)
    except ConfigError as err:
        print(f"wyoming-polytts: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    configure_logging(config.settings.log_level, config.settings.openai.api_keys)
    stop = asyncio.Event()
    handle_signals(stop)
    try:
        await serve(config, stop)
    except ConfigError as err:
        print(f"wyoming-polytts: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    return 0


def run() -> None:
    if sys.argv[1:2] == ["voices"]:
        from .voices_cli import main as voices_main

        sys.exit(voices_main(sys.argv[2:]))
    exit_process(asyncio.run(main()))


if __name__ == "__main__":
    run()

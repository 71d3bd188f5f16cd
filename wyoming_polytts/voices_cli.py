"""``wyoming-polytts voices ...``: manage the voice library offline."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import load_config
from .const import EXIT_CONFIG_ERROR
from .errors import ConfigError, PolyttsError
from .library.meta import VoiceMeta
from .server import build_library


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wyoming-polytts voices", description="Manage cloned voices in the voice library."
    )
    parser.add_argument(
        "--config", type=Path, default=os.environ.get("POLYTTS_CONFIG"), help="YAML config file"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="register a voice from a recording (3-30 s of speech)")
    add.add_argument("name", help="voice name: letters, digits, - and _")
    add.add_argument("file", type=Path, help="recording in any common audio format")
    add.add_argument("--transcript", help="what the recording says (ZipVoice and GLM-TTS need it)")
    add.add_argument(
        "--language", action="append", default=[], help="a language it speaks, e.g. en_US"
    )
    add.add_argument("--default-language", help="language used when a request names none")
    add.add_argument("--engine", action="append", default=[], help="an engine that may use it")
    add.add_argument("--description", help="a readable description")
    add.add_argument("--display-name", help="a display name (the voice name by default)")
    commands.add_parser("list", help="list the voices and whether each can be used")
    remove = commands.add_parser("remove", help="delete a voice")
    remove.add_argument("name")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        library = build_library(load_config(args.config))
    except ConfigError as err:
        print(f"wyoming-polytts: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        if args.command == "add":
            meta = VoiceMeta(
                name=args.display_name,
                languages=args.language,
                default_language=args.default_language,
                transcript=args.transcript,
                description=args.description,
                engines=args.engine,
            )
            voice = library.add(args.name, args.file.read_bytes(), meta)
            print(f"added {voice.id} ({voice.audio_path})")
        elif args.command == "list":
            for voice in library.voices():
                state = f"unavailable: {voice.error}" if voice.error else "ok"
                languages = ",".join(voice.languages) or "-"
                engines = ",".join(voice.meta.engines) or "any"
                print(f"{voice.id}\t{languages}\t{engines}\t{state}")
        else:
            library.remove(args.name)
            print(f"removed {args.name}")
    except (PolyttsError, OSError) as err:
        print(f"wyoming-polytts voices: {err}", file=sys.stderr)
        return 1
    return 0

"""Public constants shared across the server."""

PROGRAM_NAME = "wyoming-polytts"
PROGRAM_DESCRIPTION = "Many TTS engines behind one Wyoming and OpenAI server"
PROGRAM_URL = "https://github.com/wyoming-polytts/wyoming-polytts"

DEFAULT_WYOMING_URI = "tcp://0.0.0.0:10200"
DEFAULT_VOICE = "en_US-joe-medium"
CATALOG_REFRESH_INTERVAL = 30.0
"""Seconds the voice catalog is kept before it is built again on its next use."""

SAMPLE_WIDTH = 2
"""Bytes per sample of every PCM stream the server sends (16-bit signed)."""

CHANNELS = 1

EXIT_CONFIG_ERROR = 2

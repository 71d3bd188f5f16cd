"""wyoming-polytts: many TTS engines behind one Wyoming and OpenAI server."""

__version__ = "0.1.0"

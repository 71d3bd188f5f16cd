"""The OpenAI-compatible speech API: an aiohttp app on the server's pool and catalog."""

from .app import create_app, start_http
from .settings import ShimSettings

__all__ = ["ShimSettings", "create_app", "start_http"]

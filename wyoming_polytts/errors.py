"""Errors that reach a client: each carries a stable code and an HTTP status.

The Wyoming handler sends them as ``error`` events (text and code); the OpenAI
app turns them into OpenAI-shaped JSON with ``http_status``.
"""


class PolyttsError(Exception):
    """Base class of every error a client may see."""

    code = "synthesis-failed"
    http_status = 500


class VoiceNotFoundError(PolyttsError):
    """The requested voice is not in the catalog."""

    code = "voice-not-found"
    http_status = 404


class InvalidTextError(PolyttsError):
    """The text is empty, too long, or cannot be spoken by the voice."""

    code = "invalid-text"
    http_status = 400


class InvalidRequestError(PolyttsError):
    """A request option is out of range or of the wrong kind."""

    code = "invalid-request"
    http_status = 400


class InvalidAudioError(PolyttsError):
    """Uploaded reference audio is unreadable, silent, too short or too long."""

    code = "invalid-audio"
    http_status = 400


class PayloadTooLargeError(PolyttsError):
    """A request body or uploaded file is over its configured limit."""

    code = "payload-too-large"
    http_status = 413


class InsufficientStorageError(PolyttsError):
    """The disk holding the voice library is full; nothing was written."""

    code = "insufficient-storage"
    http_status = 507


class VoiceExistsError(PolyttsError):
    """A voice with that name is already in the library."""

    code = "voice-exists"
    http_status = 409


class ServerBusyError(PolyttsError):
    """The engine's queue is full; the client may retry later."""

    code = "server-busy"
    http_status = 503


class TooManyConnectionsError(PolyttsError):
    """A client address, or all clients together, hold as many connections as allowed."""

    code = "too-many-connections"
    http_status = 429


class TooManyStreamsError(PolyttsError):
    """A client address, or all clients together, hold as many open streams as allowed."""

    code = "too-many-streams"
    http_status = 429


class EngineUnavailableError(PolyttsError):
    """The engine failed to load or is not installed."""

    code = "engine-unavailable"
    http_status = 503


class InsufficientMemoryError(EngineUnavailableError):
    """Loading the engine would exceed the memory budget, and idle engines cannot free enough."""

    code = "insufficient-memory"
    http_status = 503


class SynthesisError(PolyttsError):
    """The engine raised while synthesizing."""

    code = "synthesis-failed"
    http_status = 500


class SynthesisTimeoutError(PolyttsError):
    """The engine worked on one sentence longer than ``pool.job_timeout`` without audio."""

    code = "synthesis-timeout"
    http_status = 504


class EngineOutOfMemoryError(PolyttsError):
    """The engine ran out of (GPU) memory on this request; it stays usable."""

    code = "out-of-memory"
    http_status = 503


class ServerShuttingDownError(PolyttsError):
    """The server is shutting down and takes no new requests."""

    code = "server-shutting-down"
    http_status = 503


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and what was expected."""

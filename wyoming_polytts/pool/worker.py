"""One turn of a sentence job in an engine's worker thread.

A turn runs the engine's generator until the sentence ends, the job is cancelled,
or the scheduler asks for the worker (a waiting first sentence): then the job keeps
the rest in :attr:`Job.paused` and a later turn resumes it. Whatever the engine
raises becomes the job's :attr:`Job.failure`, which its reader gets as an error the
client can read once the worker is free; running out of memory hands the memory
back and fails only that request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator

from ..engines.base import Engine
from ..errors import EngineOutOfMemoryError, PolyttsError, SynthesisError
from .jobs import Job
from .memory import is_out_of_memory, release_memory

_LOGGER = logging.getLogger(__name__)


def run_turn(
    engine: Engine,
    name: str,
    job: Job,
    make_way: Callable[[], bool],
    heard: Callable[[], None],
) -> None:
    """Give ``job`` one turn (blocking; in a worker thread of ``engine``).

    ``make_way()`` tells, after each piece, whether another job waits for this worker;
    ``heard()`` is called (on the loop) once the job's request has its first audio.
    """
    pieces, job.paused = job.paused, None
    if job.cancelled.is_set():
        if isinstance(pieces, Generator):
            pieces.close()
        return
    started = time.monotonic()
    try:
        if pieces is None:
            pieces = engine.synthesize(job.request)
            if job.transform is not None:
                pieces = job.transform(pieces)
        for piece in pieces:
            if job.cancelled.is_set():
                break
            job.emit(piece)
            first_audio = job.awaiting_first_audio
            job.heard = True
            if first_audio:  # its request's later sentences may start now
                job.call_soon(heard)
            if make_way():
                job.paused = pieces
                return
        else:
            job.elapsed = job.busy + time.monotonic() - started
    except PolyttsError as err:
        job.failure = err
    except Exception as err:  # an engine bug must reach the client, not kill the worker
        job.failure = _engine_failure(name, job, err)
    finally:
        job.busy += time.monotonic() - started


def _engine_failure(name: str, job: Job, err: Exception) -> PolyttsError:
    if is_out_of_memory(err):
        _LOGGER.warning("Engine %s ran out of memory: %s", name, err)
        release_memory()
        return EngineOutOfMemoryError(
            f"engine '{name}' ran out of memory; try again shortly, with "
            "shorter text, or with fewer requests at once"
        )
    _LOGGER.exception("Engine %s failed on %r", name, job.request.text[:80])
    return SynthesisError(f"engine '{name}' failed ({type(err).__name__}); see the server log")

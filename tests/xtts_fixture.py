"""A tiny, randomly initialised XTTS in the real checkpoint layout, for tests.

No XTTS weights can be fetched here, so this builds one from coqui-tts's own
config and model classes: a 2-layer, 64-channel GPT with the perceiver
resampler and the real audio token ids; the HiFi-GAN decoder and speaker
encoder keep their fixed sizes, so model.pth is ~93 MB. The folder gets
model.pth, config.json, a vocab.json trained offline with the tokenizers
library, and speakers_xtts.pth with two studio speakers whose latents the
model computed itself. It speaks noise, but through the real loading,
conditioning and streaming code. Never committed: built in a tmp folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

SPEAKERS = ("Ana Florence", "Andrew Chipper")

TINY_SETTINGS = {"max_new_tokens": 6, "stream_chunk_size": 3, "language_detection": "fast"}
"""Engine options that keep the tiny model fast in CI: six audio tokens per text piece,
decoded three at a time."""

MAX_TEXT_TOKENS = 60
"""The tiny GPT's text positions (the real model has 402): longer text makes the
model's own length check fail, which tests use as a real mid-stream engine error."""

_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "the front door is locked and the lights are off",
    "guten morgen, wie geht es dir heute? das licht ist aus.",
    "la porte est fermée et la lumière est éteinte",
]
_ALPHABET = list("abcdefghijklmnopqrstuvwxyzäöüßàâçéèêëîïôûùüÿœæ.,!?'-")


def engine_config(checkpoint: Path) -> dict[str, object]:
    """The ``engines.xtts`` config section that runs the tiny XTTS on the CPU."""
    return {"checkpoint_dir": str(checkpoint), "device": "cpu", **TINY_SETTINGS}


def reference_audio(path: Path, pitch: float, seconds: float = 3.0, rate: int = 16000) -> Path:
    """A voice-like recording (a vowel-ish harmonic tone with vibrato) as a mono WAV."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = pitch * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    soundfile.write(path, (0.2 * wave * envelope).astype(np.float32), rate)
    return path


def build_tiny_xtts(folder: Path) -> Path:
    """Write a complete tiny XTTS checkpoint into ``folder`` and return it."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    config = XttsConfig()
    special = ["[STOP]", "[UNK]", "[SPACE]", "[START]", *(f"[{lang}]" for lang in config.languages)]
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=160, special_tokens=special, initial_alphabet=_ALPHABET, show_progress=False
    )
    tokenizer.train_from_iterator(_CORPUS, trainer)
    tokenizer.save(str(folder / "vocab.json"))

    args = config.model_args
    args.gpt_layers = 2
    args.gpt_n_model_channels = 64
    args.gpt_n_heads = 4
    args.gpt_use_perceiver_resampler = True
    args.gpt_num_audio_tokens = 1026
    args.gpt_start_audio_token = 1024
    args.gpt_stop_audio_token = 1025
    args.gpt_max_text_tokens = MAX_TEXT_TOKENS
    args.decoder_input_dim = args.gpt_n_model_channels
    config.save_json(str(folder / "config.json"))

    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=folder / "vocab.json")
    model.init_models()
    torch.save({"model": model.state_dict()}, folder / "model.pth")

    model.eval()
    speakers = {}
    for i, name in enumerate(SPEAKERS):
        wav = reference_audio(folder / f"{i}.wav", pitch=110.0 + 90.0 * i)
        samples, rate = soundfile.read(wav, dtype="float32")
        wav.unlink()
        audio = torch.from_numpy(samples)[None]
        speakers[name] = {
            "gpt_cond_latent": model.get_gpt_cond_latents(audio, rate),
            "speaker_embedding": model.get_speaker_embedding(audio, rate),
        }
    torch.save(speakers, folder / "speakers_xtts.pth")
    return folder

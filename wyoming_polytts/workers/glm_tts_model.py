"""The one seam between the GLM-TTS worker and GLM-TTS's model calls.

:class:`SpeechModel` is all the worker asks of a model: prompt features from a
reference recording and its transcript, and audio pieces for a text.
:func:`load_glm_tts` builds the real one from a GLM-TTS checkout and checkpoint,
following the call order of GLM-TTS's ``glmtts_inference.py`` and
``tools/gradio_app.py`` at the pinned commit (see :mod:`.glm_tts_upstream`): text
normalization, speech tokens, speaker embedding, LLM tokens, flow matching and
vocoder. It imports torch and GLM-TTS only when
called, so the worker's Wyoming side runs without them; tests drive that side
through a small model of their own. Verified only on a machine with a CUDA GPU:
GLM-TTS's speech tokenizer calls ``.cuda()`` unconditionally.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .glm_tts_upstream import build_token2wav, speaker_embedding_problem


@dataclass(frozen=True)
class ModelSettings:
    """How the worker was asked to load and run the model."""

    checkout: Path
    """The GLM-TTS git checkout (its code and ``frontend/`` files)."""

    checkpoint: Path
    """The downloaded checkpoint folder (``llm``, ``flow``, ``speech_tokenizer`` ...)."""

    sample_rate: int
    """Hertz of the audio: 24000 (HiFT vocoder) or 32000 (Vocos)."""

    use_phoneme: bool
    top_k: int
    sample_method: str
    """``ras`` (repetition-aware sampling) or ``topk``."""

    seed: int


class SpeechModel(Protocol):
    """What the worker needs from a model."""

    @property
    def sample_rate(self) -> int:
        """Hertz of the pieces :meth:`synthesize` yields."""
        ...

    def prompt(self, audio: np.ndarray, rate: int, transcript: str) -> Any:
        """Prompt features of a reference recording (float32 mono in [-1, 1])."""
        ...

    def synthesize(self, text: str, prompt: Any) -> Iterator[np.ndarray]:
        """Float32 mono pieces in [-1, 1] at :attr:`sample_rate`, each as soon as it exists."""
        ...


ModelFactory = Callable[[ModelSettings], SpeechModel]


class ModelLoadError(Exception):
    """The model cannot be loaded: the message says what is missing."""


_MEL = {24000: (480, 1920), 32000: (640, 2560)}
"""Hop and window (FFT) sizes of the prompt's mel features at each rate."""

_VOCODERS = {24000: "hift/hift.pt", 32000: "vocos2d/generator_jit.ckpt"}
_CHECKPOINT_PARTS = ("llm/config.json", "flow/flow.pt", "flow/config.yaml", "speech_tokenizer")
_TOKENIZER = "vq32k-phoneme-tokenizer"
_GENERIC_MODULES = ("utils", "flow", "llm", "cosyvoice")


def load_glm_tts(settings: ModelSettings) -> GlmTts:
    """Import GLM-TTS from its checkout and load every part of the checkpoint once."""
    checkout, checkpoint, rate = settings.checkout, settings.checkpoint, settings.sample_rate
    _enter_checkout(checkout)
    needed = [*_CHECKPOINT_PARTS, _TOKENIZER, _VOCODERS[rate]]
    missing = [part for part in needed if not (checkpoint / part).exists()]
    if missing:
        raise ModelLoadError(f"the checkpoint {checkpoint} lacks {', '.join(missing)}")
    frontend_dir = checkpoint / "frontend"
    if not (frontend_dir / "campplus.onnx").is_file():
        frontend_dir = checkout / "frontend"
    if not (frontend_dir / "campplus.onnx").is_file():
        raise ModelLoadError(f"frontend/campplus.onnx is in neither {checkpoint} nor {checkout}")

    import torch

    if not torch.cuda.is_available():
        raise ModelLoadError("GLM-TTS needs a CUDA GPU (its speech tokenizer calls .cuda())")
    from cosyvoice.cli.frontend import SpeechTokenizer, TextFrontEnd, TTSFrontEnd
    from glmtts_inference import get_special_token_ids
    from llm.glmtts import GLMTTS
    from transformers import AutoTokenizer, LlamaForCausalLM
    from utils import tts_model_util, yaml_util
    from utils.audio import mel_spectrogram

    device = torch.device("cuda")
    encoder, feature_extractor = yaml_util.load_speech_tokenizer(
        str(checkpoint / "speech_tokenizer")
    )
    hop, window = _MEL[rate]
    mel = partial(
        mel_spectrogram,
        sampling_rate=rate,
        hop_size=hop,
        n_fft=window,
        num_mels=80,
        win_size=window,
        fmin=0,
        fmax=8000,
        center=False,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint / _TOKENIZER), trust_remote_code=True)
    frontend = TTSFrontEnd(
        tokenizer.encode,
        SpeechTokenizer(encoder, feature_extractor),
        mel,
        str(frontend_dir / "campplus.onnx"),
        str(frontend_dir / "spk2info.pt"),
        device,
    )
    problem = speaker_embedding_problem(frontend, torch)
    if problem:
        raise ModelLoadError(problem)
    llm = GLMTTS(llama_cfg_path=str(checkpoint / "llm" / "config.json"), mode="PRETRAIN")
    llama: Any = LlamaForCausalLM.from_pretrained(str(checkpoint / "llm"), dtype=torch.float32)
    llm.llama = llama.to(device)
    llm.llama_embedding = llm.llama.model.embed_tokens
    llm.set_runtime_vars(special_token_ids=get_special_token_ids(frontend.tokenize_fn))
    flow = yaml_util.load_flow_model(
        str(checkpoint / "flow" / "flow.pt"), str(checkpoint / "flow" / "config.yaml"), device
    )
    token2wav = build_token2wav(tts_model_util.Token2Wav, flow, rate, device, checkout, checkpoint)
    return GlmTts(settings, frontend, TextFrontEnd(settings.use_phoneme), llm, token2wav)


def _enter_checkout(checkout: Path) -> None:
    """Make GLM-TTS importable: its folder first on sys.path and the working folder
    (its code opens ``configs/...`` and ``ckpt/...`` relative to it)."""
    if not (checkout / "llm" / "glmtts.py").is_file():
        raise ModelLoadError(f"{checkout} is not a GLM-TTS checkout (llm/glmtts.py is missing)")
    for name in _GENERIC_MODULES:
        module = sys.modules.get(name)
        if module is not None and not str(getattr(module, "__file__", "")).startswith(
            str(checkout)
        ):
            raise ModelLoadError(f"a module named {name} was imported before GLM-TTS's own")
    sys.path.insert(0, str(checkout))
    os.chdir(checkout)


@dataclass(frozen=True)
class GlmPrompt:
    """What GLM-TTS needs of a reference voice, computed once per voice."""

    text_token: Any
    """Tokens of the normalized transcript, [1, N]."""

    speech_token: Any
    """Speech tokens of the recording, int32 [1, M] (LLM and flow prompt)."""

    speech_feat: Any
    """Mel features at the model's rate, [1, T, 80] (flow prompt)."""

    embedding: Any
    """Speaker embedding (CAM++), [1, 192]."""


class GlmTts:
    """The loaded GLM-TTS parts, behind :class:`SpeechModel`."""

    def __init__(
        self, settings: ModelSettings, frontend: Any, text: Any, llm: Any, token2wav: Any
    ) -> None:
        import torch

        self._torch = torch
        self._settings = settings
        self._frontend = frontend
        self._text = text
        self._llm = llm
        self._token2wav = token2wav

    @property
    def sample_rate(self) -> int:
        return self._settings.sample_rate

    def prompt(self, audio: np.ndarray, rate: int, transcript: str) -> GlmPrompt:
        torch = self._torch
        from torchaudio.functional import resample

        wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        at_16k = resample(wave, rate, 16000)
        with torch.inference_mode():
            speech_token = self._frontend._extract_speech_token([(at_16k, 16000)])
            return GlmPrompt(
                text_token=self._frontend._extract_text_token(
                    self._text.text_normalize(transcript) + " "
                ),
                speech_token=speech_token.to(torch.int32),
                speech_feat=self._frontend._extract_speech_feat(
                    resample(wave, rate, self.sample_rate), sample_rate=self.sample_rate
                ),
                embedding=self._frontend._extract_spk_embedding(at_16k),
            )

    def synthesize(self, text: str, prompt: GlmPrompt) -> Iterator[np.ndarray]:
        # As GLM-TTS does: normalize, cut into pieces of 30-60 characters, and
        # normalize each piece again (in _speak).
        for piece in self._text.split_by_len(self._text.text_normalize(text) or ""):
            with self._torch.inference_mode():  # never held across a yield
                wave = self._speak(piece, prompt)
            if wave is not None:
                yield wave

    def _speak(self, text: str, prompt: GlmPrompt) -> np.ndarray | None:
        from utils import seed_util

        seed_util.set_seed(self._settings.seed)
        normalized = self._text.text_normalize(text)
        if not normalized or not normalized.strip():
            return None
        if self._settings.use_phoneme:
            normalized = self._text.g2p_infer(normalized)
        text_token = self._frontend._extract_text_token(normalized)
        tokens = self._llm.inference(
            text=text_token,
            text_len=self._length(text_token),
            prompt_text=prompt.text_token,
            prompt_text_len=self._length(prompt.text_token),
            prompt_speech_token=prompt.speech_token,
            prompt_speech_token_len=self._length(prompt.speech_token),
            beam_size=1,
            sampling=self._settings.top_k,
            sample_method=self._settings.sample_method,
            spk=None,
        )[0].tolist()
        if not tokens:
            return None
        wave, _ = self._token2wav.token2wav_with_cache(
            tokens,
            prompt_token=prompt.speech_token,
            prompt_feat=prompt.speech_feat,
            embedding=prompt.embedding,
        )
        samples: np.ndarray = wave.squeeze().float().cpu().numpy()
        return samples

    def _length(self, tokens: Any) -> Any:
        return self._torch.tensor([tokens.shape[1]], dtype=self._torch.int32, device=tokens.device)

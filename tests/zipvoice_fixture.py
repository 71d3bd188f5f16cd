"""Tiny ZipVoice ONNX models with exactly the interface sherpa-onnx reads, for tests.

No ZipVoice weights can be fetched here, so this writes, with the ``onnx``
package, the three graphs sherpa-onnx's ZipVoice runtime loads (inputs taken by
position, outputs and ``custom_metadata_map`` keys as its C++ sources read them):

- ``text_encoder.onnx``: ``tokens`` (int64 [1, T]), ``prompt_tokens`` (int64
  [1, P]), ``prompt_features_len`` (int64 [1]), ``speed`` (float [1]) ->
  ``text_condition`` (float [1, F, 100]) with ZipVoice's own duration rule
  ``F = ceil(L / P * (P + T) / speed)``; metadata ``use_espeak``, ``use_pinyin``.
- ``fm_decoder.onnx``: ``t``, ``x``, ``text_condition``, ``speech_condition``,
  ``guidance_scale`` -> ``v``; metadata ``feat_dim``, ``sample_rate``, ``n_fft``,
  ``hop_length``, ``window_length``, ``num_mels``.
- ``vocos_24khz.onnx``: ``mels`` (float [1, 100, F]) -> ``mag``, ``x``, ``y``
  (float [1, 513, F]); metadata ``model_type: vocos`` and its STFT settings.

The decoder's velocity is ``-x / (1 - t) + guidance_scale``: the Euler solver
sherpa-onnx runs then ends exactly at ``guidance_scale * (1 - t_last)``, where
``t_last`` is the start of its last step. So the loudness of the result tells
how many steps ran, with which ``t_shift`` and guidance (see
:func:`expected_level`), while its length follows the text like real speech.
The vocoder turns that level into a steady harmonic tone. Never committed:
built in a tmp folder in about a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEAT_DIM = 100
N_FFT = 1024
BINS = N_FFT // 2 + 1
SAMPLE_RATE = 24000
_OPSET = [helper.make_opsetid("", 17)]

_TONE_BINS = range(8, 48, 4)
"""Vocoder bins that carry the tone: multiples of 4 add up in phase at hop 256."""

_TONE_GAIN = 2.0
"""Vocoder magnitude per unit of mel level: the default settings' tone is near -17 dBFS."""

_IPA = (
    "abcdefghijklmnopqrstuvwxyz"
    "ɐɑɒæɓβɔɕçɗɖðʤəɘɚɛɜɝɞɟɡɠɢɦɧħɥɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶɹɺɾɻʀʁɽʂʃʈʧʉʊʋʌɣɤʍχʎʏʑʐʒʔʕʡʢ"
    "ˈˌːˑʰʲʷ̩ᵻ"
)
_PUNCTUATION = " ,.!?;:'\"-…"


def expected_level(num_steps: int, t_shift: float, guidance_scale: float) -> float:
    """The mel level the tiny decoder ends at, from sherpa-onnx's time steps."""
    last = (num_steps - 1) / num_steps
    t_last = t_shift * last / (1 + (t_shift - 1) * last)
    return guidance_scale * (1 - t_last)


def build_tiny_zipvoice(folder: Path) -> Path:
    """Write tokens.txt, the two ZipVoice graphs and a Vocos vocoder into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_tokens(folder / "tokens.txt")
    _save(_text_encoder(), folder / "text_encoder.onnx", {"use_espeak": "1", "use_pinyin": "1"})
    decoder_meta = {
        "version": "1",
        "feat_dim": str(FEAT_DIM),
        "sample_rate": str(SAMPLE_RATE),
        "n_fft": str(N_FFT),
        "hop_length": "256",
        "window_length": str(N_FFT),
        "num_mels": str(FEAT_DIM),
    }
    _save(_fm_decoder(), folder / "fm_decoder.onnx", decoder_meta)
    vocoder_meta = {
        "model_type": "vocos",
        "sample_rate": str(SAMPLE_RATE),
        "n_fft": str(N_FFT),
        "hop_length": "256",
        "win_length": str(N_FFT),
        "center": "1",
        "normalized": "0",
        "window_type": "hann",
        "pad_mode": "reflect",
    }
    _save(_vocoder(), folder / "vocos_24khz.onnx", vocoder_meta)
    return folder


def _write_tokens(path: Path) -> None:
    """ZipVoice's tokens.txt layout: ``{token}\\t{id}``, ``_`` (padding) first."""
    tokens = ["_", *dict.fromkeys([*_PUNCTUATION, *_IPA, *_pinyin_tokens()])]
    path.write_text("".join(f"{token}\t{i}\n" for i, token in enumerate(tokens)), "utf-8")


def _pinyin_tokens() -> list[str]:
    """Every initial (with ZipVoice's ``0`` mark) and toned final of pypinyin's readings."""
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials, to_tone3
    from pypinyin.pinyin_dict import pinyin_dict

    syllables = {to_tone3(r) for readings in pinyin_dict.values() for r in readings.split(",")}
    tokens = set()
    for syllable in syllables:
        initial = to_initials(syllable, strict=False)
        tokens.add(f"{initial}0" if initial else "")
        tokens.add(to_finals_tone3(syllable, strict=False, neutral_tone_with_five=True))
    return sorted(tokens - {""})


def _save(graph: onnx.GraphProto, path: Path, metadata: dict[str, str]) -> None:
    model = helper.make_model(graph, opset_imports=_OPSET)
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def _text_encoder() -> onnx.GraphProto:
    nodes = [
        helper.make_node("Shape", ["tokens"], ["tokens_shape"]),
        helper.make_node("Shape", ["prompt_tokens"], ["prompt_shape"]),
        helper.make_node("Slice", ["tokens_shape", "one", "two"], ["T"]),
        helper.make_node("Slice", ["prompt_shape", "one", "two"], ["P"]),
        helper.make_node("Add", ["T", "P"], ["PT"]),
        helper.make_node("Cast", ["PT"], ["PT_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["P"], ["P_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["prompt_features_len"], ["L_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["L_f", "P_f"], ["per_token"]),
        helper.make_node("Mul", ["per_token", "PT_f"], ["frames_1x"]),
        helper.make_node("Div", ["frames_1x", "speed"], ["frames_f"]),
        helper.make_node("Ceil", ["frames_f"], ["frames_ceil"]),
        helper.make_node("Cast", ["frames_ceil"], ["F"], to=TensorProto.INT64),
        helper.make_node("Concat", ["one", "F", "feat_dim"], ["out_shape"], axis=0),
        helper.make_node("Expand", ["zero_frame", "out_shape"], ["text_condition"]),
    ]
    initializers = [
        _const("one", np.array([1], dtype=np.int64)),
        _const("two", np.array([2], dtype=np.int64)),
        _const("feat_dim", np.array([FEAT_DIM], dtype=np.int64)),
        _const("zero_frame", np.zeros((1, 1, FEAT_DIM), dtype=np.float32)),
    ]
    inputs = [
        helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "T"]),
        helper.make_tensor_value_info("prompt_tokens", TensorProto.INT64, [1, "P"]),
        helper.make_tensor_value_info("prompt_features_len", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1]),
    ]
    outputs = [
        helper.make_tensor_value_info("text_condition", TensorProto.FLOAT, [1, "F", FEAT_DIM])
    ]
    return helper.make_graph(nodes, "zipvoice_text_encoder", inputs, outputs, initializers)


def _fm_decoder() -> onnx.GraphProto:
    frames = [1, "F", FEAT_DIM]
    nodes = [
        helper.make_node("Sub", ["one", "t"], ["remaining"]),
        helper.make_node("Div", ["x", "remaining"], ["pull"]),
        helper.make_node("Sub", ["guidance_scale", "pull"], ["drift"]),
        # The conditions take part (times zero), as in a real decoder's graph.
        helper.make_node("Add", ["text_condition", "speech_condition"], ["conditions"]),
        helper.make_node("Mul", ["conditions", "zero"], ["unused"]),
        helper.make_node("Add", ["drift", "unused"], ["v"]),
    ]
    initializers = [
        _const("one", np.array([1.0], dtype=np.float32)),
        _const("zero", np.array([0.0], dtype=np.float32)),
    ]
    inputs = [
        helper.make_tensor_value_info("t", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("x", TensorProto.FLOAT, frames),
        helper.make_tensor_value_info("text_condition", TensorProto.FLOAT, frames),
        helper.make_tensor_value_info("speech_condition", TensorProto.FLOAT, frames),
        helper.make_tensor_value_info("guidance_scale", TensorProto.FLOAT, [1]),
    ]
    outputs = [helper.make_tensor_value_info("v", TensorProto.FLOAT, frames)]
    return helper.make_graph(nodes, "zipvoice_fm_decoder", inputs, outputs, initializers)


def _vocoder() -> onnx.GraphProto:
    gain = np.zeros((1, BINS, 1), dtype=np.float32)
    gain[0, list(_TONE_BINS), 0] = _TONE_GAIN
    phase = np.random.default_rng(0).uniform(0, 2 * np.pi, (1, BINS, 1)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["mels"], ["level"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["level", "gain"], ["mag"]),
        helper.make_node("Mul", ["mag", "zero"], ["silent"]),
        helper.make_node("Add", ["silent", "cos"], ["x"]),
        helper.make_node("Add", ["silent", "sin"], ["y"]),
    ]
    initializers = [
        _const("gain", gain),
        _const("zero", np.array([0.0], dtype=np.float32)),
        _const("cos", np.cos(phase)),
        _const("sin", np.sin(phase)),
    ]
    inputs = [helper.make_tensor_value_info("mels", TensorProto.FLOAT, [1, FEAT_DIM, "F"])]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, BINS, "F"])
        for name in ("mag", "x", "y")
    ]
    return helper.make_graph(nodes, "vocos", inputs, outputs, initializers)

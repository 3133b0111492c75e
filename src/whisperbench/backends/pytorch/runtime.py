"""Transcribing with transformers' generate(), timed at every backend's cut points."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from whisperbench.backends.base import Decoding, Hypothesis, Transcription, prompt_tokens
from whisperbench.backends.pytorch.recipes import load_model


def _sync(device) -> None:
    """Wait for the GPU's queued work, so that a timestamp taken next is when the work was done."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


class _TokenClock:
    """A generate() streamer that timestamps every decoder step (the first put is the prompt)."""

    def __init__(self, device):
        self.times: list[float] = []
        self.device = device

    def put(self, _tokens):
        _sync(self.device)
        self.times.append(time.perf_counter())

    def end(self):
        pass


class _EncoderClock:
    """Times the encoder as every backend cuts it (base.Transcription.encoder_ms): the encoder forward pass
    plus each decoder layer's cross-attention key/value projections of its output. transformers computes
    those projections inside the first decoder step (then reuses them from the cache), so they are timed
    with hooks on the projections themselves and moved to the encoder side of the cut."""

    def __init__(self, model):
        self.spans: list[tuple[str, float, float]] = []  # (module, start, end) of every timed call
        self._started: dict[str, float] = {}
        self.device = model.device
        self._watch(model.get_encoder(), "encoder")
        for index, layer in enumerate(model.get_decoder().layers):
            self._watch(layer.encoder_attn.k_proj, f"decoder.{index}.cross_k")
            self._watch(layer.encoder_attn.v_proj, f"decoder.{index}.cross_v")

    def _watch(self, module, name: str) -> None:
        module.register_forward_pre_hook(lambda *_: self._start(name))
        module.register_forward_hook(lambda *_: self._end(name))

    def _start(self, name: str) -> None:
        _sync(self.device)
        self._started[name] = time.perf_counter()

    def _end(self, name: str) -> None:
        _sync(self.device)
        self.spans.append((name, self._started.pop(name), time.perf_counter()))

    def ms(self) -> float:
        return sum(end - start for _, start, end in self.spans) * 1e3


class PyTorchTranscriber:
    def __init__(self, model, processor, precision: str, decoding: Decoding):
        import torch

        self.torch = torch
        self.model = model.eval()
        self.processor = processor
        self.dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
        self.generate_kwargs = _generate_kwargs(model, decoding)
        # one generate() call returns the prompt before the generated tokens (see _generate_kwargs)
        self.prompt_length = 0 if decoding.timestamps else len(prompt_tokens(model.generation_config, decoding))
        self.encoder_clock = _EncoderClock(model)
        self.device = model.device
        self.runtime = {"device": model.device.type}
        if precision == "int8":
            from whisperbench.backends.pytorch import int8

            self.runtime |= int8.kernels()
        if model.device.type == "cuda":
            self.runtime["gpu"] = torch.cuda.get_device_name(model.device)

    def transcribe(self, audio: np.ndarray, forced_tokens: int | None = None) -> Transcription:
        torch = self.torch
        # forced length: transformers' min-new-tokens processor keeps end-of-text out until the count is reached
        length = {"min_new_tokens": forced_tokens, "max_new_tokens": forced_tokens} if forced_tokens else {}
        self.encoder_clock.spans.clear()
        clock = _TokenClock(self.device)
        start = time.perf_counter()
        features = self.processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
        features = features.to(self.device, self.dtype)
        _sync(self.device)
        features_done = time.perf_counter()
        with torch.no_grad():  # quanto tensors cannot run under inference_mode
            sequences = self.model.generate(features, streamer=clock, **(self.generate_kwargs | length))
        text = self.processor.tokenizer.decode(sequences[0], skip_special_tokens=True)
        end = time.perf_counter()
        steps = clock.times[1:]
        return Transcription(
            text=text,
            n_tokens=len(steps),
            features_ms=(features_done - start) * 1e3,
            encoder_ms=self.encoder_clock.ms(),
            first_token_ms=(steps[0] - start) * 1e3 if steps else (end - start) * 1e3,
            decode_ms=(steps[-1] - steps[0]) * 1e3 if steps else 0.0,
            total_ms=(end - start) * 1e3,
        )

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[Hypothesis]:
        """Decode a batch with generate(): every input is the same 30 s window, so no attention mask is needed."""
        self.encoder_clock.spans.clear()
        features = self.processor.feature_extractor(audios, sampling_rate=16000, return_tensors="pt").input_features
        with self.torch.no_grad():
            sequences = self.model.generate(features.to(self.device, self.dtype), **self.generate_kwargs).cpu()
        eos = self.model.generation_config.eos_token_id
        sequences = sequences[:, self.prompt_length :]
        texts = self.processor.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        # sequences hold the generated tokens, padded with end-of-text after each row's end; a row that
        # reached max_new_tokens has no end-of-text token to count
        counts = [int((row != eos).sum()) + int((row == eos).any()) for row in sequences]
        return [Hypothesis(text, count) for text, count in zip(texts, counts, strict=True)]


def _generate_kwargs(model, decoding: Decoding) -> dict:
    kwargs = {
        "num_beams": decoding.num_beams,
        "do_sample": False,
        "max_new_tokens": decoding.max_new_tokens,
        "return_timestamps": decoding.timestamps,
    }
    if getattr(model.generation_config, "is_multilingual", False):
        kwargs |= {"language": decoding.language, "task": decoding.task}
    if not decoding.timestamps:
        # short-form without timestamps is one decoder run per 30 s window, as in every other backend.
        # transformers' loop otherwise treats a timestamp token the model emits anyway as the end of a segment
        # and re-runs encoder and decoder from there (random weights did, 5 times a clip: 5x the encoder ms)
        kwargs["force_unique_generate_call"] = True
    return kwargs


def _compile(transcriber: PyTorchTranscriber) -> dict:
    """torch.compile (Inductor) the encoder's and the decoder's forward, then compile them on a silent window.

    Each forward is replaced, not the modules' __call__, so the encoder clock's hooks stay outside the
    compiled code and keep their cut point (in the first decoder step the cross-attention K/V hooks break the
    decoder's graph where they run). The decoder is compiled for dynamic shapes (the cache grows every step,
    the accuracy pass's batches shrink as rows end). Compilation happens here, in load, so no timed run
    pays for it; a shape met later (a new batch size) compiles in the untimed accuracy pass."""
    import warnings

    torch = transcriber.torch
    # the encoder clock's hooks call time.perf_counter, which Dynamo leaves outside the graph, as intended
    warnings.filterwarnings("ignore", message=r".*Dynamo does not know how to trace the builtin `time\.perf_counter")
    encoder, decoder = transcriber.model.get_encoder(), transcriber.model.get_decoder()
    encoder.forward = torch.compile(encoder.forward)
    decoder.forward = torch.compile(decoder.forward, dynamic=True)
    start = time.perf_counter()
    silence = np.zeros(16000 * 30, np.float32)
    for tokens in (4, 8):  # two cache lengths at least, so the decoder graph is compiled for any length
        transcriber.transcribe(silence, forced_tokens=tokens)
    compile_s = round(time.perf_counter() - start, 2)
    return {"compiled": "torch.compile (inductor): encoder, decoder", "compile_s": compile_s}


def load(artifact_dir: Path, precision: str, options, decoding: Decoding, threads: int):
    import torch
    import transformers
    from transformers import WhisperProcessor

    # generate() warns on every call that max_new_tokens overrides the config's max_length.
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    model = load_model(Path(artifact_dir), precision, options).to(options.device)
    processor = WhisperProcessor.from_pretrained(artifact_dir)
    transcriber = PyTorchTranscriber(model, processor, precision, decoding)
    if options.compile:
        transcriber.runtime |= _compile(transcriber)
    return transcriber

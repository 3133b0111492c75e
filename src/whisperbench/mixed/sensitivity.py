"""The sensitivity pass: quantize one tensor group at a time to the backend's 4-bit scheme and measure the
damage on the calibration utterances (never an evaluated set).

Damage is measured under teacher forcing on the fp32 model's own greedy transcripts (the shared decoding
rules: forced prompt, suppressed tokens): the mean KL divergence of the next-token distributions
(fp32 ‖ quantized) over every generated token, end-of-text included, and the fraction of those tokens the
quantized model still ranks first. Groups are ranked by KL, ties by name, so the ranking is a function of
the weights and the clips alone.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from whisperbench.mixed import groups as tensor_groups

log = logging.getLogger("whisperbench")


def _inputs(hf_dir: Path, rows: list[dict]):
    import torch
    from transformers import WhisperFeatureExtractor

    from whisperbench.data import audio as audio_io

    extractor = WhisperFeatureExtractor.from_pretrained(hf_dir)
    audios = [audio_io.load(row["audio_path"]) for row in rows]
    features = extractor(audios, sampling_rate=16000, return_tensors="np").input_features
    return torch.from_numpy(features)


def _greedy(model, features, rules):
    """fp32 greedy transcripts under `rules` (backends.greedy.Rules): [B, prompt + T] tokens (end-of-text
    after the end) and the valid-target mask."""
    import torch

    eot = rules.eos
    encoded = model.model.encoder(features).last_hidden_state
    tokens = torch.tensor([list(rules.prompt)] * features.shape[0])
    done = torch.zeros(features.shape[0], dtype=torch.bool)
    valid, cache, step_input = [], None, tokens
    for step in range(rules.max_new_tokens):
        out = model(encoder_outputs=(encoded,), decoder_input_ids=step_input, past_key_values=cache, use_cache=True)
        logits, cache = out.logits[:, -1], out.past_key_values
        logits[:, rules.suppressed(first=step == 0)] = -float("inf")
        chosen = torch.where(done, torch.full_like(done, eot, dtype=torch.long), logits.argmax(-1))
        valid.append(~done)
        tokens, step_input = torch.cat([tokens, chosen[:, None]], dim=1), chosen[:, None]
        done |= chosen == eot
        if done.all():
            break
    return tokens, torch.stack(valid, dim=1)


def _log_probs(model, features, tokens, prompt_length: int, encoded=None):
    """Teacher-forced next-token log-probabilities at every generated position [B, T, vocab]; `encoded`: the
    encoder's output where the quantized group is in the decoder alone (the encoder is then not re-run)."""
    import torch

    with torch.inference_mode():
        if encoded is None:
            encoded = model.model.encoder(features).last_hidden_state
        logits = model(encoder_outputs=(encoded,), decoder_input_ids=tokens[:, :-1]).logits
    return torch.log_softmax(logits[:, prompt_length - 1 :].float(), dim=-1)


def _damage(reference, quantized, targets, valid) -> dict:
    kl = (reference.exp() * (reference - quantized)).sum(-1)
    agree = quantized.argmax(-1) == targets
    count = valid.sum()
    return {
        "kl": round(float((kl * valid).sum() / count), 6),
        "agreement": round(float((agree & valid).sum() / count), 6),
    }


def _quantized(model, group: tensor_groups.Group, scheme, memo: dict) -> dict:
    """Quantize the group's weights in place; return their fp32 values to restore. `memo` keeps each module's
    quantized weight, so that the all-groups row does not quantize again (k-means palettes take minutes)."""
    import torch

    saved = {}
    with torch.no_grad():
        for module in group.modules:
            weight = model.get_submodule(module).weight
            saved[module] = weight.detach().clone()
            if module not in memo:
                memo[module] = scheme.quantize_dequantize(weight)
            weight.copy_(memo[module])
    return saved


def _restore(model, saved: dict) -> None:
    import torch

    with torch.no_grad():
        for module, weight in saved.items():
            model.get_submodule(module).weight.copy_(weight)


def measure(hf_dir: Path, rows: list[dict], scheme, prompt_rules, max_new_tokens: int, threads: int) -> dict:
    """Rank the model's groups by the damage of quantizing each alone to `scheme` (mixed/schemes.py;
    `prompt_rules`: base.Decoding)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from whisperbench.backends.greedy import Rules

    torch.set_num_threads(threads)
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32).eval()
    features = _inputs(hf_dir, rows)
    rules = replace(Rules.of(model.generation_config, prompt_rules), max_new_tokens=max_new_tokens)
    prompt = rules.prompt
    with torch.inference_mode():
        tokens, valid = _greedy(model, features, rules)
    targets = tokens[:, len(prompt) :]
    with torch.inference_mode():
        encoded = model.model.encoder(features).last_hidden_state
    reference = _log_probs(model, features, tokens, len(prompt), encoded)
    results, groups, memo = [], tensor_groups.tensor_groups(model.config.to_dict()), {}
    for group in groups:
        saved = _quantized(model, group, scheme, memo)
        decoder_only = all(module.startswith("model.decoder.") for module in group.modules)
        quantized = _log_probs(model, features, tokens, len(prompt), encoded if decoder_only else None)
        damage = _damage(reference, quantized, targets, valid)
        _restore(model, saved)
        results.append({"group": group.name, "weights": group.weights, **damage})
        log.info("%s: KL %.5f, agreement %.3f", group.name, damage["kl"], damage["agreement"])
    saved = [_quantized(model, group, scheme, memo) for group in groups]
    uniform = _damage(reference, _log_probs(model, features, tokens, len(prompt)), targets, valid)
    for values in saved:
        _restore(model, values)
    ranking = sorted(results, key=lambda row: (-row["kl"], row["group"]))
    return {
        "scheme": scheme.name,
        "metric": "mean KL(fp32 || quantized) of the next-token distribution, teacher-forced on fp32 greedy output",
        "calibration_ids": [row["id"] for row in rows],
        "tokens": int(valid.sum()),
        "ranking": [{"rank": rank + 1, **row} for rank, row in enumerate(ranking)],
        "all_groups_4bit": uniform,
    }


def figure(record: dict, title: str, path: Path, fmt: str) -> None:
    """One bar per group, KL on a log axis, most damaging on top; agreement written beside each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = record["ranking"][::-1]
    colors = {"encoder": "#4C72B0", "decoder": "#DD8452"}
    fig, axis = plt.subplots(figsize=(6.4, 0.22 * len(rows) + 1.2))
    values = [max(row["kl"], 1e-6) for row in rows]
    axis.barh(range(len(rows)), values, color=[colors.get(row["group"].split(".")[0], "#55A868") for row in rows])
    for index, row in enumerate(rows):
        axis.text(values[index], index, f" {row['agreement']:.1%}", va="center", fontsize=6)
    axis.set_yticks(range(len(rows)), [row["group"] for row in rows], fontsize=7)
    axis.set_xscale("log")
    axis.set_xlabel("KL(fp32 ‖ group at 4 bits), nats per token (label: top-1 agreement)")
    axis.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=150, format=fmt)
    plt.close(fig)

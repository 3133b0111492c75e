"""The two Core ML programs of a Whisper model, as PyTorch modules traced and converted by coremltools.

* `encoder.mlpackage`: input_features [1, n_mels, 3000] (the config's mel bins: 80, or 128 for large-v3) →
  encoder_hidden_states and, for every decoder layer i, cross_key_i / cross_value_i [1, 1500, d] — the same
  cut point as the ONNX encoder (base.Transcription).
* `decoder.mlpackage`: one token step over a **fixed-size self-attention cache given as inputs**
  (self_keys / self_values [layers, 1, heads, max_target_positions, head_dim]), returning the logits
  and the step's new key/value rows, which the caller writes at `position`. Explicit inputs rather
  than Core ML states: every shape is static (what the Neural Engine wants), the program converts for
  any deployment target from iOS 17, and the same step runs in PyTorch here, so the host loop
  (`greedy`) is tested on Linux even though `predict` exists only on macOS.

`Decoder.forward` re-implements one Whisper decoder step over the HF modules' own weights (so every
const in the program keeps its module path as name: `decoder_layers_0_fc1_weight`), without
transformers' cache classes, which tracing cannot follow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ENCODER, DECODER = "encoder.mlpackage", "decoder.mlpackage"
PACKAGES = (ENCODER, DECODER)
N_FRAMES = 3000


class Encoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder = model.model.encoder
        self.cross = model.model.decoder.layers

    def forward(self, input_features):
        hidden = self.encoder(input_features).last_hidden_state
        outputs = [hidden]
        for layer in self.cross:
            outputs += [layer.encoder_attn.k_proj(hidden), layer.encoder_attn.v_proj(hidden)]
        return tuple(outputs)


class Decoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.decoder, self.proj_out = model.model.decoder, model.proj_out
        self.heads = model.config.decoder_attention_heads
        self.head_dim = model.config.d_model // self.heads

    def _split(self, x):  # [1, n, d] → [1, heads, n, head_dim]
        return x.view(1, -1, self.heads, self.head_dim).transpose(1, 2)

    def _attend(self, attention, query, keys, values, mask=None):
        scores = self._split(attention.q_proj(query) * attention.scaling) @ keys.transpose(-1, -2)
        weights = torch.softmax(scores if mask is None else scores + mask, dim=-1)
        return attention.out_proj((weights @ values).transpose(1, 2).reshape(1, 1, -1))

    def forward(self, input_ids, position, update_mask, attention_mask, self_keys, self_values, *cross):
        decoder = self.decoder
        x = decoder.embed_tokens(input_ids) + decoder.embed_positions.weight[position].unsqueeze(0)
        new_keys, new_values = [], []
        for index, layer in enumerate(decoder.layers):
            h = layer.self_attn_layer_norm(x)
            key, value = self._split(layer.self_attn.k_proj(h)), self._split(layer.self_attn.v_proj(h))
            new_keys.append(key)
            new_values.append(value)
            keys = self_keys[index] * (1 - update_mask) + key * update_mask
            values = self_values[index] * (1 - update_mask) + value * update_mask
            x = x + self._attend(layer.self_attn, h, keys, values, attention_mask)
            h = layer.encoder_attn_layer_norm(x)
            cross_keys, cross_values = self._split(cross[2 * index]), self._split(cross[2 * index + 1])
            x = x + self._attend(layer.encoder_attn, h, cross_keys, cross_values)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        logits = self.proj_out(decoder.layer_norm(x))[:, -1]
        return logits, torch.stack(new_keys), torch.stack(new_values)


def wrappers(model) -> tuple[Encoder, Decoder]:
    return Encoder(model).eval(), Decoder(model).eval()


def example_inputs(config) -> dict:
    """Shapes of every program input (one utterance, one token), filled with valid values."""
    layers, heads = config.decoder_layers, config.decoder_attention_heads
    length, head_dim = config.max_target_positions, config.d_model // heads
    cache = torch.zeros(layers, 1, heads, length, head_dim)
    update = torch.zeros(1, 1, length, 1)
    update[..., 0, :] = 1
    mask = torch.full((1, 1, 1, length), -1e4)
    mask[..., 0] = 0
    cross = [torch.zeros(1, config.max_source_positions, config.d_model)] * (2 * layers)
    return {
        "encoder": {"input_features": torch.zeros(1, config.num_mel_bins, N_FRAMES)},
        "decoder": {
            "input_ids": torch.zeros(1, 1, dtype=torch.int32),
            "position": torch.zeros(1, dtype=torch.int32),
            "update_mask": update,
            "attention_mask": mask,
            "self_keys": cache,
            "self_values": cache.clone(),
            **{f"cross_{kind}_{i}": cross[0] for i in range(layers) for kind in ("key", "value")},
        },
    }


def trace(model) -> dict:
    """TorchScript of both wrappers (coremltools converts traced modules)."""
    encoder, decoder = wrappers(model)
    inputs = example_inputs(model.config)
    with torch.no_grad():
        return {
            "encoder": torch.jit.trace(encoder, tuple(inputs["encoder"].values())),
            "decoder": torch.jit.trace(decoder, tuple(inputs["decoder"].values())),
        }


def convert(traced: dict, config, output_dir: Path, compute_precision: str, deployment_target: str) -> None:
    """Write encoder.mlpackage and decoder.mlpackage (ML Program) at the given compute precision."""
    import coremltools as ct

    inputs = example_inputs(config)
    outputs = {
        "encoder": ["encoder_hidden_states"]
        + [f"cross_{kind}_{i}" for i in range(config.decoder_layers) for kind in ("key", "value")],
        "decoder": ["logits", "new_keys", "new_values"],
    }
    for part, package in (("encoder", ENCODER), ("decoder", DECODER)):
        program = ct.convert(
            traced[part],
            inputs=[
                ct.TensorType(name=name, shape=value.shape, dtype=np.float32 if value.is_floating_point() else np.int32)
                for name, value in inputs[part].items()
            ],
            outputs=[ct.TensorType(name=name) for name in outputs[part]],
            convert_to="mlprogram",
            minimum_deployment_target=getattr(ct.target, deployment_target),
            compute_precision=getattr(ct.precision, compute_precision.upper()),
            skip_model_load=True,
        )
        program.save(str(output_dir / package))


# ---------------------------------------------------------------- host decoding (both runtimes)


class Step:
    """What `greedy` needs from a runtime: encode features, and run one decoder step."""

    encode: Callable[[np.ndarray], dict]  # features → {cross_key_i, cross_value_i: [1, 1500, d]}
    step: Callable[[dict], tuple[np.ndarray, np.ndarray, np.ndarray]]  # inputs → logits, new keys, new values


def greedy(runtime: Step, cross: dict, shape: tuple, rules) -> tuple[list[int], list[float]]:
    """Greedy decoding of one utterance with the PyTorch backend's rules; returns tokens and step times."""
    layers, heads, length, head_dim = shape
    keys = np.zeros((layers, 1, heads, length, head_dim), np.float32)
    values = np.zeros_like(keys)
    prompt, generated, times = rules.prompt, [], []
    token = prompt[0]
    for position in range(min(len(prompt) - 1 + rules.max_new_tokens, length)):
        update = np.zeros((1, 1, length, 1), np.float32)
        update[0, 0, position] = 1
        mask = np.full((1, 1, 1, length), -1e4, np.float32)
        mask[..., : position + 1] = 0
        inputs = {
            "input_ids": np.array([[token]], np.int32),
            "position": np.array([position], np.int32),
            "update_mask": update,
            "attention_mask": mask,
            "self_keys": keys,
            "self_values": values,
            **cross,
        }
        logits, new_keys, new_values = runtime.step(inputs)
        keys[:, :, :, position], values[:, :, :, position] = new_keys[:, :, :, 0], new_values[:, :, :, 0]
        if position + 1 < len(prompt):
            token = prompt[position + 1]
            continue
        token = int(rules.pick(np.reshape(logits, -1), first=not times))
        generated.append(token)
        times.append(time.perf_counter())
        if token == rules.eos:
            break
    return generated, times

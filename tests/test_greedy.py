"""The helpers every greedy loop shares: the decoding rules, and the processor files every artifact carries."""

from __future__ import annotations

import numpy as np

from whisperbench.backends import greedy, processor
from whisperbench.backends.base import Decoding
from whisperbench.models.fetch import hf_dir


def _rules(tiny_en_dir) -> greedy.Rules:
    from transformers import GenerationConfig

    return greedy.Rules.of(GenerationConfig.from_pretrained(hf_dir(tiny_en_dir)), Decoding(max_new_tokens=7))


def test_the_rules_are_transformers_short_form_greedy_rules(tiny_en_dir):
    rules = _rules(tiny_en_dir)
    # tiny.en: <|startoftranscript|> <|notimestamps|>; English-only, so no language or task token
    assert rules.prompt == (50257, 50362) and rules.eos == 50256 and rules.max_new_tokens == 7
    logits = np.zeros((2, 51864), np.float32)
    logits[:, rules.begin_suppress[0]] = 5.0  # the best token at the first step is one it may not start with
    logits[:, 11] = 1.0
    assert list(rules.pick(logits, first=True)) == [11, 11]
    assert list(rules.pick(logits, first=False)) == [rules.begin_suppress[0]] * 2
    logits[:, rules.suppress[0]] = 9.0
    assert rules.pick(logits[0], first=False) != rules.suppress[0]


def test_a_forced_length_decodes_exactly_that_many_tokens_without_end_of_text(tiny_en_dir):
    rules = _rules(tiny_en_dir)
    forced = rules.forced(3)
    assert forced.max_new_tokens == 3 and rules.eos in forced.suppressed(first=False)
    assert rules.forced(None) is rules and rules.eos not in rules.suppressed(first=False)


def test_every_artifact_gets_the_same_processor_files(tiny_en_dir, tmp_path):
    source = hf_dir(tiny_en_dir)
    copied = processor.copy(source, tmp_path / "artifact")
    assert {"config.json", "generation_config.json", "tokenizer.json"} <= set(copied)
    assert sorted(p.name for p in (tmp_path / "artifact").iterdir()) == sorted(copied)
    assert "model.safetensors" not in copied


def test_a_batch_decodes_each_row_until_its_end_of_text_and_drops_ended_rows():
    rules = greedy.Rules(prompt=(7, 8), eos=0, suppress=(), begin_suppress=(), max_new_tokens=5)
    scripts = {0: [3, 4, 0], 1: [5, 0], 2: [6, 6, 6, 6, 6]}  # row 2 never ends: cut at max_new_tokens
    seen_batches = []

    def step(tokens, cache, cross):
        seen_batches.append(len(tokens))
        rows, steps = cross["row"], len(cache["past"][0]) if len(cache["past"]) else 0
        logits = np.full((len(rows), 10), -1.0, np.float32)
        for i, row in enumerate(rows):
            script = scripts[int(row)]
            after_prompt = steps - (len(rules.prompt) - 1)
            if 0 <= after_prompt < len(script):
                logits[i, script[after_prompt]] = 1.0
        past = np.concatenate([cache["past"], tokens], axis=1) if len(cache["past"]) else tokens
        return logits, {"past": past}

    cache, cross = {"past": np.zeros((3, 0), np.int64)}, {"row": np.arange(3)}
    generated, times = greedy.decode_batch(step, cache, cross, rules, 3)
    assert generated == [[3, 4, 0], [5, 0], [6, 6, 6, 6, 6]] and len(times) == 5
    assert seen_batches == [3, 3, 3, 2, 1, 1]  # the prompt's 2 steps, then rows leave as they end

"""A backend's mixed precision for one model: which groups get the high width, and the checks at validation.

A backend that can mix declares, in its module:
  * `MIXED`: precision -> selection, "sensitivity" (the pass's damage per weight, highest first) or "fixed"
    (the order that needs no measurement: `budget.fixed_order`);
  * `mixed_scheme(options, precision) -> schemes.Scheme | schemes.Palette`: the 4-bit scheme of a
    sensitivity-chosen precision, which the sensitivity pass simulates;
  * `mixed_widths(options) -> budget.Widths`: what its format can quantize and the widths of the rest;
  * an option `mixed_bits_per_weight`: the budget.
A backend whose format cannot mix declares `UNMIXABLE = {precision: reason}` for the names users would try.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from whisperbench.mixed import budget
from whisperbench.mixed.groups import norm_parameters, tensor_groups

LOWEST, HIGHEST = 4.0, 16.0


def is_mixed(module, precision: str) -> bool:
    return precision in getattr(module, "MIXED", {})


def needs_sensitivity(module, precision: str) -> bool:
    return getattr(module, "MIXED", {}).get(precision) == "sensitivity"


def check_budget(value) -> None:
    """An option's budget value, checked without the model (ValueError: the one-line reason)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not LOWEST <= value <= HIGHEST:
        raise ValueError(
            f"mixed_bits_per_weight {value!r} is not a number of bits per weight in {LOWEST:g} ... {HIGHEST:g}"
        )


def budget_problem(module, options, model: str, model_config: dict) -> str | None:
    """Why the budget cannot be met for this model (None: it can): the reachable range in the message."""
    value = options.mixed_bits_per_weight
    smallest, largest = budget.reachable(
        tensor_groups(model_config), norm_parameters(model_config), module.mixed_widths(options)
    )
    if smallest - 1e-9 <= value <= largest + 1e-9:
        return None
    return (
        f"mixed_bits_per_weight: {value} cannot be met for {model}: its mixes reach {smallest:.3f} "
        f"(every movable group at 4 bits) to {largest:.3f} (all at 8); choose a budget in that range"
    )


def choose(module, precision: str, options, model_config: dict, sensitivity: dict | None) -> dict:
    """The mix of `precision` for a model (from its config.json fields), as the artifact records it."""
    groups, norms = tensor_groups(model_config), norm_parameters(model_config)
    widths = module.mixed_widths(options)
    record = {"selection": module.MIXED[precision]}
    if needs_sensitivity(module, precision):
        scheme = module.mixed_scheme(options, precision).name
        if sensitivity is None or sensitivity["scheme"] != scheme:
            found = sensitivity["scheme"] if sensitivity else "none"
            raise ValueError(f"{precision} needs the sensitivity pass of scheme {scheme} (given: {found})")
        order = budget.sensitivity_order(sensitivity)
        record |= {"scheme": scheme, "calibration_ids": sensitivity["calibration_ids"]}
    else:
        order = budget.fixed_order(groups)
    assignment = budget.solve(groups, norms, order, options.mixed_bits_per_weight, widths)
    described = budget.describe(groups, norms, assignment, widths, options.mixed_bits_per_weight)
    modules = {module_name: assignment[group.name] for group in groups for module_name in group.modules}
    return record | described | {"module_bits": modules}


def choose_for_export(module_name: str, precision: str, options, export_dir: Path, sensitivity: dict | None) -> dict:
    """`choose` for a backend that builds from one export: the model's config from the export's config.json."""
    config = json.loads((Path(export_dir) / "config.json").read_text())
    return choose(importlib.import_module(module_name), precision, options, config, sensitivity)

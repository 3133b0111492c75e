"""Bits per weight of a mixed recipe, and the solver that chooses it under a budget.

Effective bits per weight = the nominal bits of every parameter of the model (4 or 8 for a quantized group's
weights, the backend's float width for biases, layer norms and what its format leaves in float) over the
number of parameters, the tied embedding counted once. Block scales are overhead, not nominal bits: the
artifact's measured size shows them (and the record says how far the size is from params x bits / 8).

The solver walks an order of groups and gives each the high width where the budget still holds, skipping a
group that would exceed it and trying the next (a smaller one may fit). The sensitivity order is by damage per
bit (a group's KL alone at 4 bits over its weights: the greedy order of the knapsack that buys the most
avoided damage per bit spent, so one large group does not take the whole budget from several small, damaging
ones); the fixed order is the mix that needs no measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from whisperbench.mixed.groups import EMBEDDING, Group, layer_of


@dataclass(frozen=True)
class Widths:
    """A backend's widths: `low`/`high` for the groups its format can move between the two, `fixed` for the
    groups it keeps at one width (in float, or a table its quantizer stores at 4 bits only), `float_bits` for
    biases and norms."""

    float_bits: int
    fixed: dict[str, int] = field(default_factory=dict)
    low: int = 4
    high: int = 8

    def movable(self, groups: list[Group]) -> list[Group]:
        return [group for group in groups if group.name not in self.fixed]


def uniform(groups: list[Group], widths: Widths) -> dict[str, int]:
    """Every movable group at the low width, the fixed ones at theirs."""
    return {group.name: widths.fixed.get(group.name, widths.low) for group in groups}


def effective_bits(groups: list[Group], norms: int, assignment: dict[str, int], widths: Widths) -> float:
    bits = sum(group.weights * assignment[group.name] + group.biases * widths.float_bits for group in groups)
    total = sum(group.weights + group.biases for group in groups) + norms
    return (bits + norms * widths.float_bits) / total


def reachable(groups: list[Group], norms: int, widths: Widths) -> tuple[float, float]:
    """The smallest and largest effective bits a mix can have (all movable groups low, all high)."""
    low = uniform(groups, widths)
    high = low | {group.name: widths.high for group in widths.movable(groups)}
    return effective_bits(groups, norms, low, widths), effective_bits(groups, norms, high, widths)


def solve(groups: list[Group], norms: int, order: list[str], budget: float, widths: Widths) -> dict[str, int]:
    """Promote groups in `order` to the high width while the effective bits stay within `budget`."""
    assignment = uniform(groups, widths)
    movable = {group.name for group in widths.movable(groups)}
    for name in order:
        if name not in movable:
            continue
        trial = assignment | {name: widths.high}
        if effective_bits(groups, norms, trial, widths) <= budget + 1e-9:
            assignment = trial
    return assignment


def fixed_order(groups: list[Group]) -> list[str]:
    """The mix that needs no measurement: the embedding / output projection, then the first and last layer of
    the encoder and of the decoder (each layer's groups in model order)."""
    layers: dict[str, list[int]] = {}
    for group in groups:
        if (where := layer_of(group.name)) is not None:
            layers.setdefault(where[0], []).append(where[1])
    chosen = [(stack, index) for stack, found in layers.items() for index in (min(found), max(found))]
    order = [EMBEDDING]
    for stack, index in dict.fromkeys(chosen):
        order += [group.name for group in groups if layer_of(group.name) == (stack, index)]
    return order


def sensitivity_order(record: dict) -> list[str]:
    """The groups of a sensitivity record by KL per weight, highest first (ties by name)."""
    rows = sorted(record["ranking"], key=lambda row: (-row["kl"] / row["weights"], row["group"]))
    return [row["group"] for row in rows]


def describe(groups: list[Group], norms: int, assignment: dict[str, int], widths: Widths, budget: float) -> dict:
    """What an artifact records of its mix."""
    movable = {group.name for group in widths.movable(groups)}
    return {
        "bits_per_weight": round(effective_bits(groups, norms, assignment, widths), 4),
        "budget_bits_per_weight": budget,
        "n_parameters": sum(group.weights + group.biases for group in groups) + norms,
        "high_bit_groups": [name for name, bits in assignment.items() if name in movable and bits == widths.high],
        "bits": assignment,
    }

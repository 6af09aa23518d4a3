"""Stragglers: a GPU slower than the fleet's median for the same model and dtype.

Within one node `bench.outlier` compares a GPU with its siblings; across the fleet a whole node of slow GPUs (a
power cap, an old firmware, a hot rack) only shows against the others of the same model. The model key is name,
memory and SM count, so different SKUs with one marketing name are never compared.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from mldoctor.fleet.node import GpuModel, NodeSummary
from mldoctor.fleet.policy import STRAGGLER_RATIO

DEFAULT_RATIO = STRAGGLER_RATIO
BINS = tuple(round(0.5 + 0.05 * i, 2) for i in range(15))
"""Lower edges of the ratio histogram (0.50, 0.55 ... 1.20); the last bin takes everything above."""


@dataclass(frozen=True, slots=True)
class ModelGroup:
    """One model and dtype across the fleet: how many GPUs, their median, and how their ratios spread."""

    model: GpuModel
    dtype: str
    gpus: int
    median: float
    histogram: tuple[int, ...]
    """GPUs per ratio bin (BINS)."""


@dataclass(frozen=True, slots=True)
class Straggler:
    """A GPU slower than the fleet's median for its model and dtype: a power cap, old firmware or a hot rack
    shows only there."""

    node: str
    gpu: str
    """The GPU's index on its node."""
    uuid: str | None
    model: GpuModel
    dtype: str
    tflops: float
    median: float

    @property
    def ratio(self) -> float:
        return self.tflops / self.median


def describe(found: Iterable[Straggler]) -> str:
    """One node's stragglers in a line: per GPU, each slow dtype's ratio to its model's fleet median."""
    by_gpu: dict[tuple[str, str | None, GpuModel], list[Straggler]] = {}
    for straggler in found:
        by_gpu.setdefault((straggler.gpu, straggler.uuid, straggler.model), []).append(straggler)
    parts = []
    for (gpu, uuid, model), slow in by_gpu.items():
        ratios = ", ".join(f"{s.dtype} {s.tflops:.0f} TFLOP/s = {s.ratio:.2f}x" for s in slow)
        parts.append(f"GPU {gpu}{f' ({uuid})' if uuid else ''}: {ratios} the fleet median of {model.label}")
    return "; ".join(parts)


def find(nodes: Iterable[NodeSummary], ratio: float = DEFAULT_RATIO) -> tuple[list[ModelGroup], list[Straggler]]:
    """The groups (model x dtype) and every GPU figure below `ratio` x its group's median, slowest first.
    A group of one GPU has no fleet to compare with and flags nothing."""
    nodes = list(nodes)
    models: dict[GpuModel, int] = {}
    by_id: dict[int, int] = {}
    """id(model) -> its number: one value hash per model object, not one per figure (there are 10^5 of those)."""
    figures: dict[tuple[int, str], list[float]] = {}
    for node in nodes:
        for gpu in node.gpus:
            number = by_id.get(id(gpu.model))
            if number is None:
                number = by_id[id(gpu.model)] = models.setdefault(gpu.model, len(models))
            for dtype, tflops in gpu.tflops:
                figures.setdefault((number, dtype), []).append(tflops)
    medians = {key: statistics.median(values) for key, values in figures.items()}
    stragglers = []
    for node in nodes:
        for gpu in node.gpus:
            number = by_id[id(gpu.model)]
            for dtype, tflops in gpu.tflops:
                median = medians[number, dtype]
                if tflops < ratio * median and len(figures[number, dtype]) > 1:
                    stragglers.append(Straggler(node.node, gpu.index, gpu.uuid, gpu.model, dtype, tflops, median))
    model_of = {number: model for model, number in models.items()}
    groups = [
        ModelGroup(
            model_of[number], dtype, len(values), medians[number, dtype], _histogram(values, medians[number, dtype])
        )
        for (number, dtype), values in figures.items()
    ]
    groups.sort(key=lambda g: (g.model.name, g.model.memory_gib, g.model.sm_count, g.dtype))
    stragglers.sort(key=lambda s: (s.ratio, s.node, s.gpu, s.dtype))
    return groups, stragglers


def _histogram(values: list[float], median: float) -> tuple[int, ...]:
    counts = [0] * len(BINS)
    width, last, lowest = BINS[1] - BINS[0], len(BINS) - 1, BINS[0] * median
    for value in values:
        counts[max(0, min(last, int((value - lowest) / median / width + 1e-9)))] += 1
    return tuple(counts)

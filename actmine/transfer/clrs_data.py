"""CLRS data in memory, once sampled: the CLRS vocabulary (locations and types, as plain strings),
a batch as a list of probes (`Probe`, `Dataset`), the baseline's randomised ``pos`` inputs and
the conversion to tensors.  Sampling itself (`algorithmic.sample_dataset`) needs dm-clrs; nothing
here does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# The CLRS vocabulary (clrs._src.specs), as plain strings.
NODE, EDGE, GRAPH = "node", "edge", "graph"
SCALAR, CATEGORICAL, MASK, MASK_ONE, POINTER = "scalar", "categorical", "mask", "mask_one", "pointer"
SHOULD_BE_PERMUTATION = "should_be_permutation"
MASKED = -1  # specs.OutputClass.MASKED


@dataclass
class Probe:
    """One input or output of a batch: ``data`` is ``[B, ...]`` (pointers as node indices)."""

    name: str
    location: str
    type_: str
    data: np.ndarray


@dataclass
class Dataset:
    inputs: list[Probe]
    outputs: list[Probe]
    lengths: np.ndarray  # trajectory length of each sample (number of hint steps)

    @property
    def size(self) -> int:
        return len(self.lengths)

    @property
    def nb_nodes(self) -> int:
        return int(next(p for p in self.inputs if p.name == "pos").data.shape[1])

    def take(self, idx: np.ndarray) -> "Dataset":
        return Dataset(
            [Probe(p.name, p.location, p.type_, p.data[idx]) for p in self.inputs],
            [Probe(p.name, p.location, p.type_, p.data[idx]) for p in self.outputs],
            self.lengths[idx],
        )


def randomize_pos(batch: Dataset, rng: np.random.RandomState) -> Dataset:
    """``samplers.process_random_pos``: ``pos`` becomes sorted uniforms within each segment."""
    inputs = []
    for p in batch.inputs:
        if p.name == "pos":
            b, n = p.data.shape
            unsorted = rng.uniform(size=(b, n))
            new = np.empty_like(p.data, dtype=np.float64)
            for i in range(b):
                cuts = np.concatenate([np.flatnonzero(p.data[i] == 0), [n]])
                for lo, hi in zip(cuts[:-1], cuts[1:]):
                    new[i, lo:hi] = np.sort(unsorted[i, lo:hi])
            p = Probe(p.name, p.location, p.type_, new)
        inputs.append(p)
    return Dataset(inputs, batch.outputs, batch.lengths)


def _to_tensors(probes: Sequence[Probe], device: str) -> dict[str, torch.Tensor]:
    out = {}
    for p in probes:
        if p.type_ in (POINTER, SHOULD_BE_PERMUTATION):
            out[p.name] = torch.as_tensor(p.data, device=device).long()
        else:
            out[p.name] = torch.as_tensor(p.data, dtype=torch.float32, device=device)
    return out

"""The CLRS network in PyTorch: the encode-process-decode model with the MPNN processor (the
activation under test in its three nonlinearities), the CLRS output losses and decoders, and
its training and evaluation on sampled datasets (see `algorithmic`'s docstring for the model).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import ActivationFactory
from .clrs_data import (
    CATEGORICAL,
    EDGE,
    GRAPH,
    MASK,
    MASK_ONE,
    MASKED,
    NODE,
    POINTER,
    SCALAR,
    SHOULD_BE_PERMUTATION,
    Dataset,
    Probe,
    _to_tensors,
    randomize_pos,
)
from .clrs_scores import evaluate_outputs


def _pointer_like(t: str) -> bool:
    return t in (POINTER, SHOULD_BE_PERMUTATION)


class MPNNProcessor(nn.Module):
    """``clrs._src.processors.MPNN`` (PGN over the fully connected graph, max aggregation, LN).

    Its three ReLUs (before the message MLP, inside it, after the update) are each a fresh module
    from ``make_activation``.
    """

    def __init__(self, hidden: int, make_activation: ActivationFactory):
        super().__init__()
        self.m_1 = nn.Linear(2 * hidden, hidden)
        self.m_2 = nn.Linear(2 * hidden, hidden)
        self.m_e = nn.Linear(hidden, hidden)
        self.m_g = nn.Linear(hidden, hidden)
        self.msg_1 = nn.Linear(hidden, hidden)
        self.msg_2 = nn.Linear(hidden, hidden)
        self.o_1 = nn.Linear(2 * hidden, hidden)
        self.o_2 = nn.Linear(hidden, hidden)
        self.ln = nn.LayerNorm(hidden)
        # Created last, so that the linear layers' initial weights do not depend on the activation.
        self.act_in = make_activation()
        self.act_mid = make_activation()
        self.act_out = make_activation()

    def constant_messages(self, edge_fts: torch.Tensor, graph_fts: torch.Tensor) -> torch.Tensor:
        """``We e_ij + Wg g``: the part of the messages that does not change between steps."""
        return self.m_e(edge_fts) + self.m_g(graph_fts)[:, None, None, :]

    def forward(self, node_fts: torch.Tensor, const_msgs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        z = torch.cat([node_fts, hidden], dim=-1)  # [B, n, 2h]
        # msgs[b, i, j]: from sender i to receiver j, max-aggregated over i (as in clrs).
        msgs = self.m_1(z)[:, :, None, :] + self.m_2(z)[:, None, :, :] + const_msgs
        msgs = self.msg_2(self.act_mid(self.msg_1(self.act_in(msgs))))
        msgs = msgs.max(dim=1).values  # aggregate over senders -> [B, n, h]
        return self.ln(self.act_out(self.o_1(z) + self.o_2(msgs)))


class _Encoder(nn.Module):
    def __init__(self, location: str, type_: str, hidden: int, nb_categories: int):
        super().__init__()
        if type_ == POINTER and location != NODE:
            raise ValueError(f"{location} pointer inputs are not supported")
        self.location, self.type_ = location, type_
        self.linear = nn.Linear(nb_categories if type_ == CATEGORICAL else 1, hidden)

    def forward(self, data: torch.Tensor, nb_nodes: int) -> torch.Tensor:
        if self.type_ == POINTER:
            data = F.one_hot(data, nb_nodes).float()  # a node pointer becomes an edge mask
        if self.type_ != CATEGORICAL:
            data = data[..., None]
        return self.linear(data)


class _Decoder(nn.Module):
    """``clrs._src.decoders`` for one output; ``forward`` returns logits/values."""

    def __init__(self, location: str, type_: str, hidden: int, nb_categories: int):
        super().__init__()
        self.location, self.type_ = location, type_
        h3 = 3 * hidden  # [node_fts, hidden_prev, hidden]
        k = nb_categories if type_ == CATEGORICAL else 1
        pointer = _pointer_like(type_)
        if location == NODE:
            self.layers = nn.ModuleList(
                [nn.Linear(h3, hidden), nn.Linear(h3, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 1)]
                if pointer
                else [nn.Linear(h3, k)]
            )
        elif location == EDGE:
            self.layers = nn.ModuleList(
                [
                    nn.Linear(h3, hidden),
                    nn.Linear(h3, hidden),
                    nn.Linear(hidden, hidden),
                    nn.Linear(h3, hidden),
                    nn.Linear(hidden, 1),
                ]
                if pointer
                else [nn.Linear(h3, k), nn.Linear(h3, k), nn.Linear(hidden, k)]
            )
        elif location == GRAPH:
            self.layers = nn.ModuleList(
                [nn.Linear(h3, 1), nn.Linear(hidden, 1), nn.Linear(h3, 1)]
                if pointer
                else [nn.Linear(h3, k), nn.Linear(hidden, k)]
            )
        else:
            raise ValueError(f"invalid location {location!r}")

    def forward(self, h_t: torch.Tensor, edge_fts: torch.Tensor, graph_fts: torch.Tensor) -> torch.Tensor:
        d = self.layers
        if self.location == NODE:
            if not _pointer_like(self.type_):
                out = d[0](h_t)
                return out if self.type_ == CATEGORICAL else out.squeeze(-1)
            p_1, p_2, p_3 = d[0](h_t), d[1](h_t), d[2](edge_fts)
            p_e = p_2[:, :, None, :] + p_3  # [B, n, n, h]: p_2[i] + e[i, j]
            # logits[b, i, j] (node i points at node j) = w . max(p_1[i], p_2[j] + e[j, i]).
            p_m = torch.maximum(p_1[:, :, None, :], p_e.transpose(1, 2))
            return d[3](p_m).squeeze(-1)
        if self.location == EDGE:
            pred = d[0](h_t)[:, :, None, :] + d[1](h_t)[:, None, :, :] + d[2](edge_fts)
            if not _pointer_like(self.type_):
                return pred if self.type_ == CATEGORICAL else pred.squeeze(-1)
            pred_2 = d[3](h_t)
            p_m = torch.maximum(pred[:, :, :, None, :], pred_2[:, None, None, :, :])
            return d[4](p_m).squeeze(-1)  # [B, n, n, n]
        pred = d[0](h_t.max(dim=1).values) + d[1](graph_fts)  # GRAPH
        if not _pointer_like(self.type_):
            return pred if self.type_ == CATEGORICAL else pred.squeeze(-1)
        return pred + d[2](h_t).squeeze(-1)  # [B, n]


class CLRSNet(nn.Module):
    """Encode-process-decode for one algorithm, without hints (see the module docstring).

    ``spec`` lists ``(name, location, type, nb_categories)`` for the inputs and for the outputs.
    ``forward`` returns the raw predictions (logits/values) of every output.
    """

    def __init__(
        self,
        inputs: Sequence[tuple[str, str, str, int]],
        outputs: Sequence[tuple[str, str, str, int]],
        hidden: int,
        make_activation: ActivationFactory,
        msg_passing_steps: int = 1,
    ):
        super().__init__()
        self.hidden = hidden
        self.msg_passing_steps = msg_passing_steps
        self.encoders = nn.ModuleDict({name: _Encoder(loc, t, hidden, k) for name, loc, t, k in inputs})
        self.input_spec = {name: (loc, t) for name, loc, t, _ in inputs}
        self.decoders = nn.ModuleDict({name: _Decoder(loc, t, hidden, k) for name, loc, t, k in outputs})
        self.processor = MPNNProcessor(hidden, make_activation)

    def encode(self, inputs: dict[str, torch.Tensor], nb_nodes: int):
        any_input = next(iter(inputs.values()))
        b, h, dev = any_input.shape[0], self.hidden, any_input.device
        node_fts = torch.zeros(b, nb_nodes, h, device=dev)
        edge_fts = torch.zeros(b, nb_nodes, nb_nodes, h, device=dev)
        graph_fts = torch.zeros(b, h, device=dev)
        for name, enc in self.encoders.items():
            loc, t = self.input_spec[name]
            encoding = enc(inputs[name], nb_nodes)
            if (loc == NODE and t == POINTER) or loc == EDGE:
                edge_fts = edge_fts + encoding
            elif loc == NODE:
                node_fts = node_fts + encoding
            else:
                graph_fts = graph_fts + encoding
        return node_fts, edge_fts, graph_fts

    def forward(self, inputs: dict[str, torch.Tensor], lengths: torch.Tensor, nb_nodes: int) -> dict[str, torch.Tensor]:
        node_fts, edge_fts, graph_fts = self.encode(inputs, nb_nodes)
        const_msgs = self.processor.constant_messages(edge_fts, graph_fts)
        # One processor application per algorithm step: clrs unrolls max(T - 1, 1) times and keeps
        # each sample's state from its own last step; here a sample whose trajectory has ended
        # simply leaves the batch (the same result, without computing steps that are thrown away).
        steps = torch.clamp(lengths - 1, min=1)
        hidden = prev = torch.zeros_like(node_fts)
        for t in range(int(steps.max())):
            idx = torch.nonzero(steps > t).squeeze(1)
            whole = len(idx) == len(steps)
            nxt = hidden if whole else hidden[idx]
            for _ in range(self.msg_passing_steps):
                nxt = self.processor(
                    node_fts if whole else node_fts[idx], const_msgs if whole else const_msgs[idx], nxt
                )
            if whole:
                prev, hidden = hidden, nxt
            else:
                prev = prev.index_copy(0, idx, hidden[idx])
                hidden = hidden.index_copy(0, idx, nxt)
        h_t = torch.cat([node_fts, prev, hidden], dim=-1)
        return {name: dec(h_t, edge_fts, graph_fts) for name, dec in self.decoders.items()}


def output_loss(type_: str, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``clrs._src.losses.output_loss``."""
    if type_ == SCALAR:
        return F.mse_loss(pred, truth)
    if type_ == MASK:
        keep = (truth != MASKED).float()
        loss = F.binary_cross_entropy_with_logits(pred, truth.clamp(min=0), reduction="none")
        return (loss * keep).sum() / keep.sum().clamp(min=1)
    if type_ in (MASK_ONE, CATEGORICAL):
        masked_truth = truth * (truth != MASKED).float()
        return -(masked_truth * F.log_softmax(pred, dim=-1)).sum() / (truth == 1).sum().clamp(min=1)
    if _pointer_like(type_):
        return F.cross_entropy(pred.flatten(0, -2), truth.flatten())
    raise ValueError(f"unsupported output type {type_!r}")


def hard_prediction(type_: str, pred: torch.Tensor) -> np.ndarray:
    """``decoders.postprocess(hard=True)``: indices, 0/1 masks, one-hot, values."""
    if _pointer_like(type_):
        return pred.argmax(-1).cpu().numpy()
    if type_ == MASK:
        return (pred > 0).float().cpu().numpy()
    if type_ in (MASK_ONE, CATEGORICAL):
        return F.one_hot(pred.argmax(-1), pred.shape[-1]).float().cpu().numpy()
    return pred.detach().cpu().numpy()


def _spec_rows(probes: Sequence[Probe]) -> list[tuple[str, str, str, int]]:
    return [(p.name, p.location, p.type_, int(p.data.shape[-1]) if p.type_ == CATEGORICAL else 1) for p in probes]


def build_model(data: Dataset, hidden: int, make_activation: ActivationFactory, msg_passing_steps: int = 1) -> CLRSNet:
    return CLRSNet(_spec_rows(data.inputs), _spec_rows(data.outputs), hidden, make_activation, msg_passing_steps)


@torch.no_grad()
def evaluate_model(model: CLRSNet, data: Dataset, batch_size: int, device: str) -> dict[str, float]:
    """Per-output scores and ``score`` of ``model`` on all of ``data`` (hard predictions)."""
    model.eval()
    preds: dict[str, list[np.ndarray]] = {p.name: [] for p in data.outputs}
    types_ = {p.name: p.type_ for p in data.outputs}
    for lo in range(0, data.size, batch_size):
        batch = data.take(np.arange(lo, min(lo + batch_size, data.size)))
        out = model(_to_tensors(batch.inputs, device), torch.as_tensor(batch.lengths, device=device), batch.nb_nodes)
        for name, value in out.items():
            preds[name].append(hard_prediction(types_[name], value))
    model.train()
    return evaluate_outputs(data.outputs, {k: np.concatenate(v) for k, v in preds.items()})


def train_model(
    model: CLRSNet,
    train: Dataset,
    steps: int,
    batch_size: int,
    lr: float,
    device: str,
    rng: np.random.RandomState,
    on_step: Callable[[int], None] | None = None,
) -> tuple[float | None, int | None]:
    """Adam on random batches of ``train`` with randomised ``pos``; ``on_step(k)`` after the k-th update.

    Returns the mean of the last 20 losses (None if there was none) and the step at which the loss
    became non-finite (None if it never did): training stops there, before the update, so the
    model keeps its last finite weights and is scored as it is.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    types_ = {p.name: p.type_ for p in train.outputs}
    recent: list[float] = []
    model.train()
    for step in range(steps):
        batch = randomize_pos(train.take(rng.randint(0, train.size, size=batch_size)), rng)
        preds = model(_to_tensors(batch.inputs, device), torch.as_tensor(batch.lengths, device=device), batch.nb_nodes)
        truths = _to_tensors(batch.outputs, device)
        loss = sum(output_loss(types_[name], preds[name], truths[name]) for name in preds)
        value = float(loss.detach())
        if not math.isfinite(value):
            return (float(np.mean(recent)) if recent else None), step
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        recent = (recent + [value])[-20:]
        if on_step is not None:
            on_step(step + 1)
    return (float(np.mean(recent)) if recent else None), None

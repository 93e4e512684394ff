"""Candidates shared by the probe tests."""

from __future__ import annotations

import torch


class _BackwardRaises(torch.autograd.Function):
    """The identity, whose backward pass raises the exception given to `apply`."""

    @staticmethod
    def forward(ctx, x, error):
        ctx.error = error
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise ctx.error


def backward_raising(error: BaseException):
    """An activation: the identity forward, `error` raised by its backward pass."""
    return lambda x: _BackwardRaises.apply(x, error)

"""Stand-ins for the few names of ``jax``, ``jax.numpy``, ``chex`` and ``tensorflow`` that the light
CLRS modules (samplers, specs, probing, evaluation) use, so that `algorithmic.import_clrs` can load
them without TensorFlow or JAX: a small real ``tree_map``, ``one_hot`` and rank check, and
placeholders for the rest.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np


def _tree_map(fn: Callable, tree: Any, *rest: Any) -> Any:
    """``jax.tree_util.tree_map`` for what the samplers batch: lists, tuples, dicts, DataPoints."""
    if tree is None:
        return None
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(_tree_map(fn, *xs) for xs in zip(tree, *rest)))
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_map(fn, *xs) for xs in zip(tree, *rest))
    if isinstance(tree, dict):
        return {k: _tree_map(fn, tree[k], *(r[k] for r in rest)) for k in tree}
    if hasattr(tree, "tree_flatten"):  # probing.DataPoint, a registered pytree node
        children, meta = tree.tree_flatten()
        others = [r.tree_flatten()[0] for r in rest]
        return type(tree).tree_unflatten(meta, [_tree_map(fn, *cs) for cs in zip(children, *others)])
    return fn(tree, *rest)


def _one_hot_np(x: Any, n: int) -> np.ndarray:
    return (np.asarray(x)[..., None] == np.arange(n)).astype(np.float32)


def _assert_rank(xs: Any, rank: int) -> None:
    for x in xs if isinstance(xs, (list, tuple)) else [xs]:
        if np.ndim(x) != rank:
            raise AssertionError(f"expected rank {rank}, got shape {np.shape(x)}")


def _stub(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name, f"actmine stand-in for {name!r}, used only to load clrs' samplers")
    module.__dict__.update(attrs)
    module.__actmine_stub__ = True
    return module


def _stubs() -> dict[str, types.ModuleType]:
    """The stand-ins: exactly the names the loaded clrs modules use at import time or in sampling.

    * ``jax``: ``jax.Array`` (a type union in ``probing``), ``jax.tree_util.register_pytree_node_class``
      (a class decorator: identity) and ``jax.tree_util.tree_map`` (``samplers._batch_io`` and
      ``_batch_hints`` batch DataPoints with it: a small real implementation);
    * ``jax.numpy``: ``jnp.vectorize`` decorates three permutation helpers in ``probing`` and
      ``jnp.ndarray`` annotates them (numpy's equivalents; the few other ``jnp`` names in those
      helpers resolve to numpy too); ``jax.nn.one_hot`` is used by the same helpers;
    * ``chex``: ``chex.Array`` (a type alias) and ``chex.assert_rank`` (the algorithms' argument
      checks: a real check);
    * ``tensorflow``: ``tf.Tensor``, only in an ``isinstance`` test in ``probing`` (a class that
      nothing is an instance of).
    """
    jax_numpy = _stub(
        "jax.numpy", ndarray=np.ndarray, vectorize=np.vectorize, __getattr__=lambda name: getattr(np, name)
    )
    tree_util = _stub("jax.tree_util", register_pytree_node_class=lambda cls: cls, tree_map=_tree_map)
    jax_nn = _stub("jax.nn", one_hot=_one_hot_np)
    jax = _stub("jax", Array=type("Array", (), {}), numpy=jax_numpy, tree_util=tree_util, nn=jax_nn)
    return {
        "jax": jax,
        "jax.numpy": jax_numpy,
        "jax.tree_util": tree_util,
        "jax.nn": jax_nn,
        "chex": _stub("chex", Array=np.ndarray, assert_rank=_assert_rank),
        "tensorflow": _stub("tensorflow", Tensor=type("Tensor", (), {})),
    }

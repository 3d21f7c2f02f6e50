"""The largest eigenvalues of a symmetric operator on torch vectors, by implicitly restarted Lanczos.

ARPACK's Lanczos method (Lehoucq, Sorensen, Yang 1998), through scipy's `eigsh` over a `LinearOperator`:
it converges to the algebraically largest eigenvalues, whatever the sign of the others, and stops when
each Ritz pair's residual ||H v - lambda v|| is below `tol * |lambda|`. ARPACK works in float64 on the
host; each product runs in the operator's own dtype and device.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor

from lesam.core.errors import UserError


class _BudgetSpent(Exception):
    """The operator was asked for more products than allowed."""


def lanczos(
    matvec: Callable[[Tensor], Tensor], start: Tensor, k: int, max_products: int, tol: float, ncv: int | None = None
) -> tuple[list[float], list[Tensor], int]:
    """The k largest eigenvalues of the operator, largest first, their unit eigenvectors (like `start`) and
    the products taken. `start` is the first Lanczos vector; `ncv` the size of the Lanczos basis (scipy's
    default: max(2k + 1, 20))."""
    dim = start.numel()
    if not 1 <= k < dim:
        raise UserError(f"top_k={k} must be between 1 and the number of parameters ({dim}) less one for Lanczos")
    if ncv is not None and not k < ncv <= dim:
        raise UserError(f"ncv={ncv} must be more than top_k ({k}) and at most the number of parameters ({dim})")
    products = 0

    def apply(x: np.ndarray) -> np.ndarray:
        nonlocal products
        if products == max_products:
            raise _BudgetSpent
        products += 1
        v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1)).to(start)
        return matvec(v).double().cpu().numpy()

    operator = LinearOperator((dim, dim), matvec=apply, dtype=np.float64)
    v0 = start.double().cpu().numpy()
    try:  # one restart takes at least one product, so the product budget ends the iteration first
        values, vectors = eigsh(operator, k=k, which="LA", tol=tol, v0=v0, ncv=ncv, maxiter=max_products)
    except _BudgetSpent:
        raise UserError(
            f"the Lanczos iteration did not reach tol={tol:g} within {max_products} Hessian-vector products; "
            "raise analysis.max_iter (products per eigenvalue) or analysis.tol"
        ) from None
    order = np.argsort(values)[::-1]
    return (
        [float(values[i]) for i in order],
        [torch.from_numpy(vectors[:, i].copy()).to(start) for i in order],
        products,
    )

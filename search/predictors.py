"""LINAS predictors: Ridge or SVR-RBF, whichever cross-validates better, and their quality.

The LINAS papers found these two families best at the small sample sizes of a search
(tens to a few hundred validated subnets); MLPs were worse. Targets are standardised
inside the model so one C/alpha grid fits accuracy in percent and MACs in the hundreds of
millions alike; the CV score is MAPE on the original scale, as in the papers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_percentage_error
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR
from threadpoolctl import threadpool_limits

from supernet.errors import ConfigError

RIDGE_ALPHAS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
SVR_CS: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)


def _search(alphas: Sequence[float], cs: Sequence[float], folds: int, seed: int) -> GridSearchCV:
    model = TransformedTargetRegressor(
        regressor=Pipeline([("scale", "passthrough"), ("model", Ridge())]),
        transformer=StandardScaler(),
    )
    grid: list[dict[str, Any]] = []
    if alphas:
        grid.append(
            {
                "regressor__scale": ["passthrough"],
                "regressor__model": [Ridge()],
                "regressor__model__alpha": list(alphas),
            }
        )
    if cs:
        grid.append(
            {
                "regressor__scale": [StandardScaler()],
                "regressor__model": [SVR(kernel="rbf")],
                "regressor__model__C": list(cs),
            }
        )
    if not grid:
        raise ConfigError("give at least one Ridge alpha or one SVR C")
    return GridSearchCV(
        model,
        grid,
        scoring="neg_mean_absolute_percentage_error",
        cv=KFold(n_splits=folds, shuffle=True, random_state=seed),
        refit=True,
        n_jobs=1,
        error_score="raise",
    )


def fit_predictor(
    X: np.ndarray,
    y: np.ndarray,
    seed: int | np.random.Generator = 0,
    alphas: Sequence[float] = RIDGE_ALPHAS,
    cs: Sequence[float] = SVR_CS,
    folds: int = 5,
    threads: int | None = 1,
) -> GridSearchCV:
    """Fit Ridge (alpha grid) and SVR-RBF (C grid) by k-fold CV on MAPE; keep the better.

    Args:
        X: features (one row per validated arch; `SearchSpace.features`).
        y: the metric to predict.
        seed: seed or generator for the fold shuffle (the fits themselves are deterministic).
        alphas, cs: the grids; an empty grid leaves that family out.
        folds: CV folds, reduced to the number of rows when there are fewer.
        threads: BLAS threads while fitting (the matrices are tiny; on a shared machine a
            multi-threaded BLAS made a Ridge fit 100x slower); `None` leaves the default.

    Returns:
        The fitted `GridSearchCV`: `predict` uses the refitted best model;
        `best_params_` and `best_score_` (negated MAPE) say what was chosen.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
    if len(y) < 2:
        raise ValueError(f"a predictor needs at least 2 rows, got {len(y)}")
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**31 - 1))
    search = _search(alphas, cs, min(folds, len(y)), int(seed))
    with threadpool_limits(limits=threads):
        return search.fit(X, y)


def predictor_family(model: GridSearchCV) -> str:
    """'ridge' or 'svr': which family the CV chose (for reports)."""
    return "svr" if isinstance(model.best_params_["regressor__model"], SVR) else "ridge"


def predictor_quality(model: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Rank and error quality of `model` on rows it was not fitted on.

    Returns:
        kendall_tau and spearman (rank agreement, what a search needs) and mape (in %).
        Rank coefficients are NaN when fewer than 2 rows or a constant target.
    """
    y = np.asarray(y, dtype=float)
    pred = np.asarray(model.predict(np.asarray(X, dtype=float)), dtype=float)
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(pred) == 0:
        tau = rho = float("nan")
    else:
        tau = float(stats.kendalltau(y, pred).statistic)
        rho = float(stats.spearmanr(y, pred).statistic)
    mape = float(mean_absolute_percentage_error(y, pred) * 100) if len(y) else float("nan")
    return {"kendall_tau": tau, "spearman": rho, "mape": mape}


def fast_predict(model: GridSearchCV) -> Callable[[np.ndarray], np.ndarray]:
    """A prediction function equal to `model.predict`, without scikit-learn's per-call checks.

    NSGA-II calls the predictors once per generation on 50 rows, where input validation
    costs more than the arithmetic; a chosen Ridge becomes one matrix-vector product.
    """
    best = model.best_estimator_
    regressor, target = best.regressor_, best.transformer_
    scale, estimator = regressor.named_steps["scale"], regressor.named_steps["model"]
    mean, std = float(target.mean_[0]), float(target.scale_[0])
    if isinstance(estimator, Ridge) and scale == "passthrough":
        coef = np.ravel(estimator.coef_) * std
        intercept = float(np.ravel(estimator.intercept_)[0]) * std + mean
        return lambda X: np.asarray(X, dtype=float) @ coef + intercept

    def predict(X: np.ndarray) -> np.ndarray:
        return np.ravel(best.predict(X))

    return predict

"""Probabilistic customer-lifetime-value models: BG/NBD purchases and Gamma-Gamma spend.

Implemented directly on numpy/scipy rather than on `lifetimes` (unmaintained since 2020; it
still fits CDNOW on numpy 2 / scipy 1.17, but brings autograd and dill and would be a dead
dependency) or `pymc-marketing` (pymc + pytensor, compiled graphs; far more than MLE needs):
the models are a few closed-form expressions and maximum-likelihood fits of 3-4 parameters.

References:
- Fader, Hardie & Lee (2005), "Counting Your Customers" the Easy Way: An Alternative to the
  Pareto/NBD Model. Marketing Science 24(2). (BG/NBD)
- Fader & Hardie (2013), The Gamma-Gamma Model of Monetary Value. (spend per transaction)

Conventions: `frequency` (x) is the number of repeat purchase occasions, `recency` (t_x) the
time from the first to the last purchase, `T` the time from the first purchase to the end of
the calibration window, all in one time unit (days, weeks, ...). Predictions accept arrays or
Series; a Series in gives a Series (same index) out.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

ArrayLike = np.ndarray | pd.Series | float | int
DAYS_PER_MONTH = 365.25 / 12


# --------------------------------------------------------------------------- data preparation


def _utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    customer_col: str = "user_id",
    time_col: str = "event_time",
    value_col: str = "revenue",
    calibration_end: pd.Timestamp,
    time_unit: str = "D",
) -> pd.DataFrame:
    """Per-customer frequency / recency / T / monetary_value, the inputs of BG/NBD and Gamma-Gamma.

    Purchases are bucketed into UTC calendar days: several orders on one day are one purchase
    occasion (values summed), because the models describe occasions, not basket lines. A day is
    in the calibration window if it starts at or before `calibration_end` (pass the last
    calibration day at midnight to include all of it). Customers whose first purchase is later
    are left out. `monetary_value` is the mean value of the repeat occasions only (0 if none):
    the first purchase is excluded, as in Fader & Hardie, since it is what made the customer.
    """
    end = _utc(calibration_end)
    unit = pd.Timedelta(1, unit=time_unit)
    day = pd.to_datetime(transactions[time_col], utc=True).dt.floor("D")
    keep = (day <= end).to_numpy()
    daily = (
        pd.DataFrame(
            {
                "customer": transactions[customer_col].to_numpy()[keep],
                "day": day.to_numpy()[keep],
                "value": transactions[value_col].to_numpy(dtype=float)[keep],
            }
        )
        .groupby(["customer", "day"], sort=True)["value"]
        .sum()
        .reset_index()
    )
    per = daily.groupby("customer", sort=True).agg(
        first=("day", "min"),
        last=("day", "max"),
        occasions=("day", "size"),
        total=("value", "sum"),
        first_value=("value", "first"),
    )
    first = pd.to_datetime(per["first"], utc=True)
    frequency = per["occasions"].to_numpy() - 1
    repeat_value = (per["total"] - per["first_value"]).to_numpy()
    out = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": ((pd.to_datetime(per["last"], utc=True) - first) / unit).to_numpy(),
            "T": ((end - first) / unit).to_numpy(),
            "monetary_value": np.divide(
                repeat_value, frequency, out=np.zeros(len(per)), where=frequency > 0
            ),
        },
        index=per.index.rename(customer_col),
    )
    return out


def read_cdnow_transactions(path: str | Path) -> pd.DataFrame:
    """Read a CDNOW purchase file (master or 1/10 sample) as user_id / event_time / revenue.

    The reference data set for BG/NBD and Gamma-Gamma; used to check the fits against the
    published estimates. The sample file has an extra sequential-id column, the master a header.
    """
    raw = pd.read_csv(path, sep=r"\s+", header=None, dtype=str)
    raw = raw[raw[0].str.isdigit()]
    if raw.shape[1] == 5:  # sample: customer_id, seq_id, date, n_cds, dollars
        raw = raw.drop(columns=1)
    raw.columns = ["user_id", "date", "n_items", "revenue"]
    raw = raw.reset_index(drop=True)
    return pd.DataFrame(
        {
            "user_id": raw["user_id"].astype(int),
            "event_time": pd.to_datetime(raw["date"], format="%Y%m%d", utc=True),
            "revenue": raw["revenue"].astype(float),
        }
    )


# --------------------------------------------------------------------------- helpers


def _arrays(*values: ArrayLike) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in values]


def _like(result: np.ndarray, template: ArrayLike) -> np.ndarray | pd.Series:
    """Return a Series with the template's index if the caller passed a Series."""
    if isinstance(template, pd.Series) and np.ndim(result) == 1 and len(result) == len(template):
        return pd.Series(result, index=template.index)
    return result


def _check_rft(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9):
        raise ValueError("need frequency >= 0 and 0 <= recency <= T")
    if np.any((x == 0) & (t_x != 0)):
        raise ValueError("recency must be 0 for customers with frequency 0")


def _fit_log_params(
    neg_mean_ll: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, penalizer: float
) -> np.ndarray:
    """Minimise the mean negative log-likelihood over log-parameters (keeps them positive).

    `neg_mean_ll` returns the value and its gradient in the natural parameters; analytic
    gradients make L-BFGS-B converge in a few dozen steps. The L2 penalty
    `penalizer * sum(params**2)` (natural scale, as in `lifetimes`) tames runaway parameters on
    small or degenerate data; the bounds stop a wandering line search from overflowing exp().
    """

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        value, grad = neg_mean_ll(params)
        value += penalizer * float(np.sum(params**2))
        grad = (np.asarray(grad) + 2 * penalizer * params) * params  # chain rule for log-params
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return 1e100, np.zeros_like(log_params)
        return value, grad

    result = minimize(
        objective,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-30.0, 30.0)] * len(x0),
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10},
    )
    if not result.success and "ABNORMAL" not in str(result.message):
        raise RuntimeError(f"maximum-likelihood fit did not converge: {result.message}")
    return np.exp(result.x)


# --------------------------------------------------------------------------- BG/NBD


class BetaGeoModel:
    """BG/NBD (Fader, Hardie & Lee 2005): how many purchases, and is the customer still active.

    While active a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after
    each repeat purchase they drop out with probability p ~ Beta(a, b). A customer with no
    repeat purchase is therefore active with probability 1 (dropout only follows a purchase).
    """

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer
        self.params_: dict[str, float] = {}

    # ---- likelihood and fit

    @staticmethod
    def _log_likelihood(
        params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, grad: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Per-customer log-likelihood, eq. (6) of FHL 2005, the two terms joined by logaddexp.

        With grad=True also returns its derivatives in (r, alpha, a, b), shape (4, n).
        """
        r, alpha, a, b = params
        repeat = x > 0
        xs = np.where(repeat, x, 1.0)  # keeps the dropout term finite; masked when x = 0
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
        dropped = betaln(a + 1, b + xs - 1) - betaln(a, b) - (r + x) * np.log(alpha + t_x)
        dropped = np.where(repeat, dropped, -np.inf)
        total = np.logaddexp(alive, dropped)
        if not grad:
            return common + total
        w_alive, w_dropped = np.exp(alive - total), np.exp(dropped - total)
        d_ab = digamma(a + b)
        d_abx = digamma(a + b + x)
        d_r = (
            digamma(r + x)
            - digamma(r)
            + np.log(alpha)
            - w_alive * np.log(alpha + T)
            - w_dropped * np.log(alpha + t_x)
        )
        d_alpha = r / alpha - (r + x) * (w_alive / (alpha + T) + w_dropped / (alpha + t_x))
        d_a = (
            w_alive * (digamma(a) - d_abx)
            + w_dropped * (digamma(a + 1) - d_abx)
            - (digamma(a) - d_ab)
        )
        d_b = (
            w_alive * (digamma(b + x) - d_abx)
            + w_dropped * (digamma(b + xs - 1) - d_abx)
            - (digamma(b) - d_ab)
        )
        return common + total, np.array([d_r, d_alpha, d_a, d_b])

    def log_likelihood(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> float:
        """Total log-likelihood of the data under the fitted parameters (for model comparison)."""
        x, t_x, big_t = _arrays(frequency, recency, T)
        return float(np.sum(self._log_likelihood(self._params(), x, t_x, big_t)))

    def fit(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> BetaGeoModel:
        """Maximum-likelihood estimate of (r, alpha, a, b); identical rows are weighted, not repeated."""
        x, t_x, big_t = (a.ravel() for a in _arrays(frequency, recency, T))
        _check_rft(x, t_x, big_t)
        rows, weights = np.unique(np.column_stack([x, t_x, big_t]), axis=0, return_counts=True)
        ux, ut, uT = rows.T
        total = weights.sum()

        def neg_mean_ll(params: np.ndarray) -> tuple[float, np.ndarray]:
            ll, grad = self._log_likelihood(params, ux, ut, uT, grad=True)
            return -float(weights @ ll) / total, -(grad @ weights) / total

        scale = max(float(np.mean(big_t)), 1e-9)  # alpha is in time units; start it on that scale
        x0 = np.log([1.0, scale, 1.0, 1.0])
        r, alpha, a, b = _fit_log_params(neg_mean_ll, x0, self.penalizer)
        self.params_ = {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b)}
        return self

    def _params(self) -> np.ndarray:
        if not self.params_:
            raise RuntimeError("fit the model (or set params_) first")
        p = self.params_
        return np.array([p["r"], p["alpha"], p["a"], p["b"]])

    # ---- predictions

    def probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> np.ndarray | pd.Series:
        """P(still active at T | x, t_x, T), eq. (13) of FHL 2005; 1 when x = 0."""
        r, alpha, a, b = self._params()
        x, t_x, big_t = _arrays(frequency, recency, T)
        xs = np.maximum(x, 1.0)  # keeps the log finite; x = 0 is masked below
        log_odds_dead = (
            np.log(a)
            - np.log(b + xs - 1)
            + (r + xs) * (np.log(alpha + big_t) - np.log(alpha + t_x))
        )
        return _like(np.where(x > 0, expit(-log_odds_dead), 1.0), frequency)

    def expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> np.ndarray | pd.Series:
        """E[purchases in (T, T+t] | x, t_x, T], eq. (10) of FHL 2005.

        The Gauss hypergeometric term 2F1(r+x, b+x; a+b+x-1; z) is rewritten with Euler's
        transformation as (1-z)^(a-1-r-x) 2F1(a+b-1-r, a-1; a+b+x-1; z): its first two
        parameters then stay small, so the series converges fast and stays accurate for heavy
        buyers, where the original form loses precision.
        """
        r, alpha, a, b = self._params()
        t, x, t_x, big_t = _arrays(t, frequency, recency, T)
        if abs(a - 1.0) < 1e-8:  # removable singularity of (a+b+x-1)/(a-1) * [...] at a = 1
            a = 1.0 + 1e-8
        z = t / (alpha + big_t + t)
        decay = np.exp((a - 1) * (np.log(alpha + big_t) - np.log(alpha + big_t + t)))
        bracket = 1.0 - decay * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
        alive = np.asarray(self.probability_alive(x, t_x, big_t))
        return _like(np.maximum(alive * (a + b + x - 1) / (a - 1) * bracket, 0.0), frequency)

    def probability_no_purchase(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> np.ndarray | pd.Series:
        """P(no purchase in (T, T+t] | x, t_x, T).

        A dropped-out customer never buys; an active one cannot drop out before their next
        purchase, so they buy nothing in t with probability E[exp(-lambda t)] under the posterior
        lambda ~ Gamma(r+x, alpha+T), i.e. ((alpha+T)/(alpha+T+t))^(r+x).
        """
        r, alpha, _, _ = self._params()
        t, x, t_x, big_t = _arrays(t, frequency, recency, T)
        alive = np.asarray(self.probability_alive(x, t_x, big_t))
        quiet = np.exp((r + x) * (np.log(alpha + big_t) - np.log(alpha + big_t + t)))
        return _like(1.0 - alive + alive * quiet, frequency)

    def unconditional_expected_purchases(self, t: ArrayLike) -> np.ndarray | float:
        """E[repeat purchases in (0, t]] for a new customer, eq. (9) of FHL 2005 (x = t_x = T = 0)."""
        t = np.asarray(t, dtype=float)
        zeros = np.zeros_like(t)
        result = np.asarray(self.expected_purchases(t, zeros, zeros, zeros))
        return float(result) if result.ndim == 0 else result


# --------------------------------------------------------------------------- Gamma-Gamma


class GammaGammaModel:
    """Gamma-Gamma spend model (Fader & Hardie 2013): each customer's mean spend per occasion.

    A customer's transaction values are Gamma(p, nu) with nu ~ Gamma(q, v) across customers, so
    the posterior mean shrinks a customer's observed average towards the population mean, the
    more the fewer transactions they made. Assumes spend is independent of purchase frequency.
    """

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer
        self.params_: dict[str, float] = {}

    @staticmethod
    def _log_likelihood(
        params: np.ndarray, x: np.ndarray, m: np.ndarray, grad: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Log-density of the observed average m of x transactions (FH 2013), optionally with
        its derivatives in (p, q, v), shape (3, n)."""
        p, q, v = params
        px = p * x
        log_vmx = np.log(v + m * x)
        ll = (
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * np.log(v)
            + (px - 1) * np.log(m)
            + px * np.log(x)
            - (px + q) * log_vmx
        )
        if not grad:
            return ll
        d_pxq = digamma(px + q)
        d_p = x * (d_pxq - digamma(px) + np.log(m) + np.log(x) - log_vmx)
        d_q = d_pxq - digamma(q) + np.log(v) - log_vmx
        d_v = q / v - (px + q) / (v + m * x)
        return ll, np.array([d_p, d_q, d_v])

    def fit(self, frequency: ArrayLike, monetary_value: ArrayLike) -> GammaGammaModel:
        """Maximum-likelihood (p, q, v) on customers with at least one repeat purchase.

        Customers with frequency 0 carry no repeat-spend information and are dropped. So are
        repeat buyers whose average spend is not positive (free orders, refunds), which the
        Gamma likelihood cannot hold; that is warned about, so filter them yourself to silence it.
        """
        x, m = (a.ravel() for a in _arrays(frequency, monetary_value))
        repeat = x > 0
        unusable = repeat & ~(m > 0)
        if unusable.any():
            warnings.warn(
                f"GammaGammaModel.fit: left out {int(unusable.sum())} repeat buyers with "
                "monetary_value <= 0",
                stacklevel=2,
            )
        keep = repeat & ~unusable
        x, m = x[keep], m[keep]
        if len(x) == 0:
            raise ValueError("no customer with frequency > 0 and monetary_value > 0")

        def neg_mean_ll(params: np.ndarray) -> tuple[float, np.ndarray]:
            ll, grad = self._log_likelihood(params, x, m, grad=True)
            return -float(np.mean(ll)), -grad.mean(axis=1)

        x0 = np.log([1.0, 2.0, float(np.mean(m))])
        p, q, v = _fit_log_params(neg_mean_ll, x0, self.penalizer)
        self.params_ = {"p": float(p), "q": float(q), "v": float(v)}
        return self

    def _params(self) -> np.ndarray:
        if not self.params_:
            raise RuntimeError("fit the model (or set params_) first")
        return np.array([self.params_["p"], self.params_["q"], self.params_["v"]])

    def population_mean_value(self) -> float:
        """Mean spend per occasion of a customer we know nothing about: p v / (q - 1)."""
        p, q, v = self._params()
        return float(p * v / (q - 1)) if q > 1 else float("inf")

    def expected_average_value(
        self, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> np.ndarray | pd.Series:
        """E[mean spend per occasion | x, m] = p (v + x m) / (p x + q - 1) (needs q > 1).

        A weighted average of the population mean and the customer's own mean; frequency 0
        gives the population mean.
        """
        p, q, v = self._params()
        if q <= 1:
            raise ValueError(f"q = {q:.3g} <= 1: the spend distribution has no finite mean")
        x, m = _arrays(frequency, monetary_value)
        m = np.where(x > 0, m, 0.0)
        return _like(p * (v + x * m) / (p * x + q - 1), frequency)


# --------------------------------------------------------------------------- lifetime value


def customer_lifetime_value(
    bgnbd: BetaGeoModel,
    gg: GammaGammaModel,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    horizon_periods: float,
    discount_rate_per_period: float = 0.0,
    *,
    periods_per_month: float = DAYS_PER_MONTH,
) -> np.ndarray | pd.Series:
    """Expected spend over the next `horizon_periods`: E[purchases] x E[average value].

    With a discount rate the horizon is cut into monthly steps (`periods_per_month` time units
    each; the default assumes days, use 365.25/12/7 for weeks; the last step may be shorter);
    each step's expected purchases are discounted by (1 + rate)^-(end of step, in periods).
    Treating count and spend as independent is the Gamma-Gamma assumption.
    """
    value = np.asarray(gg.expected_average_value(frequency, monetary_value))
    if discount_rate_per_period == 0.0 or horizon_periods <= 0:
        purchases = np.asarray(bgnbd.expected_purchases(horizon_periods, frequency, recency, T))
        return _like(purchases * value, frequency)
    edges = np.append(np.arange(0.0, horizon_periods, periods_per_month), horizon_periods)
    cumulative = [np.asarray(bgnbd.expected_purchases(e, frequency, recency, T)) for e in edges[1:]]
    previous = np.zeros_like(cumulative[0])
    total = np.zeros_like(cumulative[0])
    for end, upto in zip(edges[1:], cumulative, strict=True):
        total = total + (upto - previous) / (1.0 + discount_rate_per_period) ** end
        previous = upto
    return _like(total * value, frequency)

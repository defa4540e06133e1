"""How simulated customers answer a campaign message: the ground truth for uplift.

For one send (a user, a send time, a channel, the offered products):

* without a message the user orders within the window with
  ``p_control = 1 - exp(-rate * days)``, where the rate is the user's sessions
  per day x ORDERS_PER_SESSION while active, and a tenth of that after churn;
* a message shifts the log-odds by a lift that differs by person and product:
  price-sensitive users respond more, offers that match the user's taste
  (true affinity of the offered products against the user's average) respond
  more, users who churned in the last 45 days can be won back, and heavy,
  price-insensitive buyers are put off (the "sleeping dogs" an uplift model
  must learn to leave alone); SMS works a little better than email, push a
  little worse.

So the true uplift ``p_treated - p_control`` is known for every send, and
propensity (who buys anyway) and persuadability (who buys because of the
message) differ, which is what uplift targeting is for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ORDERS_PER_SESSION = 0.25  # measured on the default shop: orders / sessions of active users
DORMANT_FACTOR = 0.1  # churned users still order, rarely
BASE_LIFT = 0.35
PRICE_LIFT = 0.35  # per unit of price sensitivity above 1
MATCH_LIFT = 0.2  # per unit of log affinity ratio of the offer
WIN_BACK_LIFT = 0.8  # churned within WIN_BACK_DAYS
WIN_BACK_DAYS = 45
SLEEPING_DOG_LIFT = -0.6  # heavy (>= 0.45 sessions/day), price-insensitive users
CHANNEL_EFFECT = {"email": 1.0, "sms": 1.25, "push": 0.8}
PROMOTED_SHARE = 0.5  # a treated conversion buys the first offered product with this probability
MEAN_UNITS = 1.3


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _affinity(truth: dict[str, pd.DataFrame], user_ids: pd.Index) -> pd.DataFrame:
    """User x product true choice affinity (preference for the category x group choice probability)."""
    from ecomarket_assets.simulator.shop import true_product_affinity

    return true_product_affinity(truth, list(user_ids))


def user_order_values(affinity: pd.DataFrame, catalog: pd.DataFrame, user_ids: pd.Index) -> pd.Series:
    """Expected value of an order a user places on their own: affinity-weighted price x mean units."""
    affinity = affinity.merge(catalog[["product_id", "price"]], on="product_id")
    affinity["weighted"] = affinity["affinity"] * affinity["price"]
    sums = affinity.groupby("user_id")[["weighted", "affinity"]].sum()
    return (sums["weighted"] / sums["affinity"] * MEAN_UNITS).reindex(user_ids)


def true_response(sends: pd.DataFrame, truth: dict[str, pd.DataFrame], catalog: pd.DataFrame) -> pd.DataFrame:
    """Expected conversion and revenue with and without the message, per send.

    `sends`: user_id, send_time (UTC), channel, product_ids (list), measurement_days.
    Returns `sends`' index with p_control, p_treated, true_uplift, value_control, value_treated,
    true_revenue_uplift.
    """
    users = truth["users"].set_index("user_id")
    ids = pd.Index(sends["user_id"].unique())
    u = users.reindex(sends["user_id"])
    send_day = sends["send_time"].dt.tz_convert(None).dt.normalize().to_numpy()
    churn = pd.to_datetime(u["churn_date"]).to_numpy()
    signup = pd.to_datetime(u["signup_date"]).to_numpy()
    days_churned = (send_day - churn) / np.timedelta64(1, "D")
    alive = (days_churned < 0) & (signup <= send_day)
    activity = u["activity_per_day"].to_numpy()
    rate = activity * ORDERS_PER_SESSION * np.where(alive, 1.0, DORMANT_FACTOR)
    days = sends["measurement_days"].to_numpy()
    p_control = 1 - np.exp(-rate * days)

    affinity = _affinity(truth, ids)
    match = _offer_match(sends, affinity)
    sensitivity = u["price_sensitivity"].to_numpy()
    lift = BASE_LIFT + PRICE_LIFT * (sensitivity - 1) + MATCH_LIFT * match
    lift = lift + WIN_BACK_LIFT * ((~alive) & (days_churned < WIN_BACK_DAYS))
    lift = lift * sends["channel"].map(CHANNEL_EFFECT).to_numpy()
    sleeping_dog = (activity >= 0.45) & (sensitivity < 0.5)
    lift = np.where(sleeping_dog, SLEEPING_DOG_LIFT, lift)
    p_treated = 1 / (1 + np.exp(-(_logit(p_control) + lift)))

    own_value = user_order_values(affinity, catalog, ids).reindex(sends["user_id"]).to_numpy()
    prices = catalog.set_index("product_id")["price"]
    first_price = prices.reindex(sends["product_ids"].str[0]).to_numpy() * MEAN_UNITS
    treated_value = PROMOTED_SHARE * first_price + (1 - PROMOTED_SHARE) * own_value
    out = pd.DataFrame(
        {"p_control": p_control, "p_treated": p_treated, "true_uplift": p_treated - p_control,
         "value_control": p_control * own_value, "value_treated": p_treated * treated_value,
         "offer_match": match, "alive": alive, "sleeping_dog": sleeping_dog},
        index=sends.index,
    )
    out["true_revenue_uplift"] = out["value_treated"] - out["value_control"]
    return out


def _offer_match(sends: pd.DataFrame, affinity: pd.DataFrame) -> np.ndarray:
    """log(mean affinity of the offered products / the user's mean affinity), clipped to +-2."""
    mean = affinity.groupby("user_id")["affinity"].mean()
    offered = sends[["user_id", "product_ids"]].explode("product_ids").rename(columns={"product_ids": "product_id"})
    offered = offered.reset_index().merge(affinity, on=["user_id", "product_id"], how="left")
    per_send = offered.groupby("index")["affinity"].mean().reindex(sends.index).fillna(0.0)
    ratio = per_send.to_numpy() / mean.reindex(sends["user_id"]).to_numpy()
    return np.clip(np.log(np.maximum(ratio, 1e-3)), -2, 2)


def simulate_outcomes(sends: pd.DataFrame, response: pd.DataFrame, truth: dict[str, pd.DataFrame],
                      catalog: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Purchase events in each send's window, drawn from the true response (canonical event schema).

    `sends` also needs `group` (treatment | control); a converting user places one order.
    """
    rng = np.random.default_rng(seed)
    treated = (sends["group"] == "treatment").to_numpy()
    p = np.where(treated, response["p_treated"], response["p_control"])
    converted = rng.random(len(sends)) < p
    chosen = sends[converted]
    window = chosen["measurement_days"].to_numpy() * 86_400
    offset = (rng.random(len(chosen)) * window).astype("int64")
    event_time = chosen["send_time"] + pd.to_timedelta(offset, unit="s")
    promoted = treated[converted] & (rng.random(len(chosen)) < PROMOTED_SHARE)
    own = _draw_own_products(rng, truth, chosen["user_id"])
    product = np.where(promoted, chosen["product_ids"].str[0].to_numpy(), own)
    quantity = 1 + rng.poisson(MEAN_UNITS - 1, len(chosen))
    price = catalog.set_index("product_id")["price"].reindex(product).to_numpy()
    n = len(chosen)
    return pd.DataFrame({
        "event_id": [f"CE{seed}-{i}" for i in range(n)],
        "event_time": event_time.to_numpy(),
        "user_id": chosen["user_id"].to_numpy(),
        "session_id": [f"CS{seed}-{i}" for i in range(n)],
        "event_type": "purchase",
        "product_id": product,
        "quantity": quantity.astype("int32"),
        "unit_price": price,
        "order_id": [f"CO{seed}-{i}" for i in range(n)],
        "channel": np.where(treated[converted], chosen["channel"].to_numpy(), "web"),
    }).sort_values("event_time", ignore_index=True)


def _draw_own_products(rng: np.random.Generator, truth: dict[str, pd.DataFrame], user_ids: pd.Series) -> np.ndarray:
    """One product per row, drawn from the user's true affinity."""
    if user_ids.empty:
        return np.array([], dtype=object)
    affinity = _affinity(truth, pd.Index(user_ids.unique())).sort_values(["user_id", "product_id"])
    grouped = {uid: (g["product_id"].to_numpy(), g["affinity"].to_numpy()) for uid, g in affinity.groupby("user_id")}
    out = []
    for uid in user_ids:  # one draw per converting send (thousands), not per event
        products, weights = grouped[uid]
        out.append(products[rng.choice(len(products), p=weights / weights.sum())])
    return np.array(out, dtype=object)

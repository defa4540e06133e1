"""Consent is read from one place: the newest customers table and the suppression folder, whatever else ran.

One small simulated shop is materialized once (profiles, recommendations, campaign lists). Then a consent file
revokes people who are in the current exports and a second file opts some of them in again, dated 2099; the
marketer re-runs exactly catalog, customers, recommendations, campaign_audiences and campaign_lists (no profile
rebuild) and every export file is read back. Plus: the control group is kept out of the files marketing
imports, and export files that fail validation are never swapped in.
"""

import csv
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ecomarket_assets.campaigns import audience as aud
from ecomarket_assets.campaigns.consent import CONSENT_COLUMN, Consent, current_consent
from ecomarket_assets.campaigns.store import CampaignStore
from ecomarket_assets.defs.ingestion import consent_checks
from ecomarket_assets.ingestion import consent
from ecomarket_assets.partitions import partition_range_tags
from ecomarket_assets.storage import DataLayout, read_frame
from ecomarket_assets_tests.test_campaign_assets import (
    EVERYTHING,
    REC_CONFIG,
    _meta,
    build_campaign_shop,
)
from ecomarket_assets_tests.test_ingestion_assets import checks_by_name

SIM = {"sim_users": 500, "sim_products": 60, "sim_days": 84, "sim_start": "2025-08-01", "sim_seed": 5}
RANGE = partition_range_tags("2025-08-01", "2025-10-23")
MARKETER_RERUN = ["catalog", "customers", "recommendations", "campaign_audiences", "campaign_lists"]
HEADER = "user_id,email_opt_in,sms_opt_in,push_opt_in,updated_at\n"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("consent_exports")
    everything = [*EVERYTHING, *dg.load_asset_checks_from_modules([consent_checks])]
    _, run, first = build_campaign_shop(root, SIM, RANGE, everything,
                                        ["campaign_specs", "campaign_audiences", "campaign_lists"])
    assert all(checks_by_name(first).values())
    layout = DataLayout(root / "data")
    store = CampaignStore(layout)
    before = _every_export_row(store)
    treated = sorted(set(before.loc[before["group"] == "treatment", "user_id"]))
    held = sorted(set(before.loc[before["group"] == "control", "user_id"]) - set(treated))
    assert len(treated) >= 10 and len(held) >= 4, "the small shop must export both groups"
    revoked = treated[:8] + held[:4]
    future = revoked[:3]  # opted in again "in 2099": must not beat today's revocation
    now = pd.Timestamp.now(tz="UTC")
    folder = layout.root / "consent"
    folder.mkdir()
    today = (now - pd.Timedelta(minutes=1)).isoformat()
    (folder / "a_revocations.csv").write_text(HEADER + "".join(f"{u},no,no,no,{today}\n" for u in revoked))
    (folder / "b_crm_sync.csv").write_text(HEADER + "".join(f"{u},yes,yes,yes,2099-01-01T00:00:00Z\n" for u in future))

    rerun = run(MARKETER_RERUN, run_config={"ops": {"recommendations": REC_CONFIG["ops"]["recommendations"]}},
                raise_on_error=False)
    return {"layout": layout, "store": store, "run": run, "first": first, "rerun": rerun, "before": before,
            "revoked": revoked, "future": future}


def _csv_rows(path: Path) -> pd.DataFrame:
    """A CSV as a spreadsheet gets it: every cell its text."""
    with path.open(newline="", encoding="utf-8") as handle:
        return pd.DataFrame(list(csv.DictReader(handle)), dtype=object)


def _export_files(store: CampaignStore) -> list[Path]:
    """Every file the campaign lists hand out: the marketing tree and the control tree."""
    trees = [store.exports, store.layout.root / "campaign_lists" / "control"]
    return sorted(f for tree in trees if tree.exists() for f in tree.rglob("*") if f.is_file())


def _every_export_row(store: CampaignStore) -> pd.DataFrame:
    frames = []
    for path in _export_files(store):
        frame = _csv_rows(path) if path.suffix == ".csv" else read_frame(path).astype({"user_id": str})
        tree = path.relative_to(store.layout.root / "campaign_lists").parts[0]  # "exports" or "control"
        frames.append(frame.assign(file=str(path), tree=tree, kind=path.suffix))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["user_id", "channel", "group", "file", "tree", "kind"])


def _current_flags(layout: DataLayout) -> dict[str, dict[str, bool]]:
    """Straight from the stored customers table: channel -> user -> opted in (unknown is no)."""
    customers = read_frame(layout.table("customers"))
    return {channel: dict(zip(customers["user_id"], customers[flag].astype("boolean").fillna(False).astype(bool),
                              strict=True)) for channel, flag in CONSENT_COLUMN.items()}


# --------------------------------------------------------------------------- the marketer's re-run


def test_after_a_consent_update_no_export_file_holds_anyone_without_current_consent(shop):
    layout, store, rerun = shop["layout"], shop["store"], shop["rerun"]
    profiles = read_frame(layout.table("user_profiles")).set_index("user_id")
    stale = profiles.loc[shop["revoked"], list(consent.FLAGS)].fillna(False).astype(bool).any(axis=1)
    assert stale.all()  # the profiles were not rebuilt: they still say these people opted in

    rows = _every_export_row(store)
    assert set(rows["kind"]) == {".csv", ".parquet"}
    flags = _current_flags(layout)
    allowed = [flags.get(channel, {}).get(user, False) for user, channel in zip(rows["user_id"], rows["channel"],
                                                                                   strict=True)]
    without = rows[~np.array(allowed, dtype=bool)]
    assert without.empty, without[["file", "user_id", "channel"]].to_string()
    assert not set(rows["user_id"]) & set(shop["revoked"])
    assert set(rows["tree"]) == {"exports", "control"}  # both groups were read back
    assert rerun.success, rerun.get_step_failure_events()
    lists = store.read_lists()
    assert not set(lists["user_id"]) & set(shop["revoked"]) and len(lists) > 0
    checks = checks_by_name(rerun)
    assert checks["campaign_exports_match_lists"] and checks["campaign_lists_respect_rules"]
    assert checks["customers_reflect_consent_files"]


def test_lists_rerun_alone_applies_consent_as_it_is_now():
    """campaign_lists re-applies the current consent to the stored audiences: a channel that lost consent falls
    back to the next consented one of the campaign, or the person is removed; nobody is added."""
    from ecomarket_assets_tests.test_campaigns import build, make_spec, make_users

    users = make_users(60)
    spec = make_spec(channels=["email", "push"], budget={"max_recipients": 1000})
    audiences = build([spec], users)
    eligible = audiences[audiences["eligible"]]
    by_email = eligible.loc[eligible["channel"] == "email", "user_id"].tolist()
    customers = users[["user_id", *consent.FLAGS]].copy()
    revoked, moved, suppressed = by_email[0], by_email[1], by_email[2]
    customers.loc[customers["user_id"] == revoked, list(consent.FLAGS)] = False
    customers.loc[customers["user_id"] == moved, ["email_opt_in", "push_opt_in"]] = [False, True]
    now = Consent.of(customers, {suppressed})
    rechecked, removed = aud.recheck_consent(audiences, [spec], now)
    row = rechecked.set_index("user_id")
    assert removed == 2
    assert row.loc[revoked, "removed_by"] == "no_consent" and not row.loc[revoked, "eligible"]
    assert row.loc[suppressed, "removed_by"] == "suppressed" and not row.loc[suppressed, "eligible"]
    assert row.loc[moved, "channel"] == "push" and row.loc[moved, "eligible"]
    assert row.loc[moved, "cost"] == spec.cost_per_message["push"]
    assert rechecked["eligible"].sum() == eligible.shape[0] - 2
    assert (now.contactable(rechecked.loc[rechecked["eligible"], "user_id"],
                            rechecked.loc[rechecked["eligible"], "channel"])).all()


def test_profiles_flags_never_decide_consent(tmp_path):
    """audience rules see the customers table's flags; a user the customers table lacks has none."""
    from ecomarket_assets.campaigns.inputs import audience_users
    from ecomarket_assets.storage import write_frame

    layout = DataLayout(tmp_path)
    write_frame(pd.DataFrame({"user_id": ["U1", "U2", "U3"], "email_opt_in": [True, True, True]}),
                layout.table("user_profiles"))
    assert not audience_users(layout)["email_opt_in"].fillna(False).any()  # no customers table: nobody
    write_frame(pd.DataFrame({"user_id": ["U1", "U2"], "email_opt_in": pd.array([False, pd.NA], dtype="boolean"),
                              "sms_opt_in": [True, False], "push_opt_in": [False, False]}), layout.table("customers"))
    email = audience_users(layout).set_index("user_id")["email_opt_in"]
    assert email.isna().tolist() == [False, True, True] and not email["U1"]  # U2 unknown, U3 not a customer
    now = current_consent(layout)
    assert now.first_channel(pd.Series(["U1", "U2", "U3"]), ["email", "sms"]).tolist() == ["sms", pd.NA, pd.NA]
    assert now.by_channel()["email"] == {"U1": False, "U2": False}


# --------------------------------------------------------------------------- consent dated in the future


def test_a_future_dated_opt_in_does_not_beat_todays_revocation(shop):
    layout, rerun = shop["layout"], shop["rerun"]
    customers = read_frame(layout.table("customers")).set_index("user_id")
    flags = customers.loc[shop["future"], list(consent.FLAGS)].astype("boolean")
    assert (flags == False).all().all()  # noqa: E712 - today's revocation holds
    quarantine = read_frame(layout.quarantine_table("consent"))
    future = quarantine[quarantine["quarantine_reason"] == consent.FUTURE]
    assert sorted(future["user_id"]) == sorted(shop["future"]) and set(future["source_file"]) == {"b_crm_sync.csv"}
    meta = _meta(rerun, "customers")
    assert meta["consent_rows_read"] == len(shop["revoked"]) + len(shop["future"])
    assert meta["consent_rows_quarantined"] == len(shop["future"]) and consent.FUTURE in meta["consent_quarantine_reasons"]
    assert meta["consent_rows_read"] == (meta["consent_rows_applied"] + meta["consent_rows_superseded"]
                                         + meta["consent_rows_quarantined"] + meta["consent_users_unknown_to_shop"])


def test_the_clock_skew_allows_minutes_not_the_future(tmp_path):
    now = pd.Timestamp("2025-06-01 12:00", tz="UTC")
    inside = (now + consent.CLOCK_SKEW - pd.Timedelta(seconds=30)).isoformat()
    beyond = (now + consent.CLOCK_SKEW + pd.Timedelta(seconds=30)).isoformat()
    (tmp_path / "a.csv").write_text(HEADER + f"U1,no,no,no,{now.isoformat()}\nU1,yes,yes,yes,{inside}\n"
                                    f"U2,no,no,no,{now.isoformat()}\nU2,yes,yes,yes,{beyond}\n"
                                    "U3,yes,no,no,2099-12-31\n")
    rows = consent.read_consent(tmp_path, now)
    assert rows.reasons == {consent.FUTURE: 2} and rows.rows_read == len(rows.valid) + len(rows.quarantined) == 5
    latest = consent.latest_consent(rows.valid).set_index("user_id")
    assert bool(latest.loc["U1", "email_opt_in"]) and not bool(latest.loc["U2", "email_opt_in"])
    assert "U3" not in latest.index
    later = consent.read_consent(tmp_path, now + pd.Timedelta(hours=1))  # the clock caught up with U2's row
    assert later.reasons == {consent.FUTURE: 1}


# --------------------------------------------------------------------------- the control group apart


def test_the_files_marketing_imports_hold_no_control_rows_and_the_control_file_holds_them(shop):
    store, rerun = shop["store"], shop["rerun"]
    lists = store.read_lists()
    rows = _every_export_row(store)
    marketing, control = rows[rows["tree"] == "exports"], rows[rows["tree"] == "control"]
    assert (marketing["group"] == "treatment").all() and len(marketing) > 0
    assert (control["group"] == "control").all() and len(control) > 0
    for kind in (".csv", ".parquet"):
        for tree, group in ((marketing, "treatment"), (control, "control")):
            part = tree[tree["kind"] == kind]
            expected = lists[lists["group"] == group]
            assert sorted(part["user_id"] + part["campaign"]) == sorted(expected["user_id"] + expected["campaign"])
    for path in {Path(p) for p in control["file"]}:
        assert path.name.endswith(("_control.csv", "_control.parquet"))
    meta = _meta(rerun, "campaign_lists")
    assert meta["export_files"] == len({f for f in marketing["file"]})
    assert meta["control_files"] == len({f for f in control["file"]})
    assert meta["treatment"] == len(marketing) // 2 and meta["control"] == len(control) // 2


# --------------------------------------------------------------------------- exports checked before the swap


def _snapshot(store: CampaignStore) -> dict[str, bytes]:
    root = store.layout.root / "campaign_lists"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_exports_that_fail_validation_are_never_swapped_in(shop, monkeypatch):
    """A fault that lets unconsented people through to the lists (simulated: campaign_lists stops re-applying
    consent, and consent changed since the audiences) is refused before the swap: the run fails naming the rule
    and every previous file, the lists table included, is left as it was."""
    layout, store, run = shop["layout"], shop["store"], shop["run"]
    rows = _every_export_row(store)
    victims = sorted(set(rows.loc[rows["tree"] == "exports", "user_id"]))[:5]
    stamp = pd.Timestamp.now(tz="UTC").isoformat()
    (layout.root / "consent" / "c_later.csv").write_text(HEADER + "".join(f"{u},no,no,no,{stamp}\n" for u in victims))
    assert run(["customers"]).success
    before = _snapshot(store)
    monkeypatch.setattr(aud, "recheck_consent", lambda audiences, specs, now: (audiences, 0), raising=False)

    shorter = {"ops": {"campaign_lists": {"config": {"horizon_days": 14}}}}  # a new tree would differ from the old
    result = run(["campaign_lists"], run_config=shorter, raise_on_error=False)
    assert not result.success
    assert _snapshot(store) == before
    failure = " ".join(str(e.event_specific_data.error) for e in result.get_step_failure_events())
    assert "campaign exports refused" in failure and "no_consent_rows" in failure
    assert not [p for p in store.exports.parent.iterdir() if p.name.startswith(".")]  # no build folder left

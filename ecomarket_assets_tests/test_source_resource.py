"""ShopSourceResource is the one door to what a source knows beyond its tables: ground truth and sales plan."""

from pathlib import Path

import pandas as pd
import pytest

from ecomarket_assets.resources import ShopSourceResource
from ecomarket_assets.storage import DataLayout
from ecomarket_assets_tests.conftest import SMALL_SIM

START, END = pd.Timestamp("2025-06-01"), pd.Timestamp("2025-12-31")


def test_the_simulated_shop_has_a_truth_and_a_file_source_has_none(data_dir: Path) -> None:
    layout = DataLayout(data_dir)
    truth = ShopSourceResource(**SMALL_SIM).truth(layout)
    assert truth is not None and truth.seed == SMALL_SIM["sim_seed"]
    assert list(truth.demand().columns) == ["date", "product_id", "expected_units"]
    users = truth.users()["user_id"].head(3).tolist()
    affinity = truth.product_affinity(users)
    assert set(affinity["user_id"]) == set(users) and (affinity["affinity"] >= 0).all()
    (data_dir / "events.csv").write_text("not read: a file source never stages for truth()\n")
    assert ShopSourceResource(kind="canonical", path=str(data_dir / "events.csv")).truth(layout) is None


def test_an_unknown_source_kind_is_refused_with_the_choices(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown source kind 'magento'; choose one of simulator, online_retail"):
        ShopSourceResource(kind="magento").staged(DataLayout(data_dir))


def test_the_sales_calendar_prefers_the_csv_then_the_shops_plan_then_black_friday(tmp_path: Path) -> None:
    def names(source: ShopSourceResource) -> set[str]:
        return set(source.sales_calendar(START, END).table()["name"])

    assert names(ShopSourceResource()) == {"black_friday_to_cyber_monday", "summer_sale"}  # the simulated shop's plan
    file_source = ShopSourceResource(kind="canonical", path=str(tmp_path))
    assert names(file_source) == {"black_friday_to_cyber_monday"}
    assert (file_source.sales_calendar(START, END).table()["discount"] == 0.0).all()  # the rule knows no discount
    csv = tmp_path / "sales.csv"
    csv.write_text("name,start,days,discount\nspring,2025-04-01,3,0.1\n")
    assert names(ShopSourceResource(sales_calendar_csv=str(csv))) == {"spring"}
    assert names(ShopSourceResource(kind="canonical", path=str(tmp_path), sales_calendar_csv=str(csv))) == {"spring"}

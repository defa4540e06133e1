"""The consent contract on `customers`: stored flags are the latest consent-file rows, nothing dropped."""

import dagster as dg

from ecomarket_assets.defs.ingestion.assets import customers
from ecomarket_assets.ingestion import consent
from ecomarket_assets.resources import DataDirResource


@dg.asset_check(asset=customers, name="customers_reflect_consent_files", blocking=True,
                description="Re-reads the consent files the last customers run used: every known user's stored "
                "email/SMS/push flags equal their latest consent row, every row breaking the file contract is in "
                "quarantine/consent, and the files have not changed since (else customers is stale).")
def customers_reflect_consent_files(data_dir: DataDirResource) -> dg.AssetCheckResult:
    passed, metadata = consent.check_customers(data_dir.layout())
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)

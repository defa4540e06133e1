"""Blocking checks of the three model assets: each registered version loads and predicts as serving will."""

from ecomarket_assets.campaigns.store import MODEL_NAME as UPLIFT_MODEL
from ecomarket_assets.defs.campaigns.assets import campaign_uplift_model
from ecomarket_assets.defs.forecasting.assets import demand_model
from ecomarket_assets.defs.recommender.assets import recommender_model
from ecomarket_assets.forecasting.store import MODEL_NAME as DEMAND_MODEL
from ecomarket_assets.mlops.lifecycle import registered_version_check
from ecomarket_assets.recommender.store import MODEL_NAME as REC_MODEL

demand_model_version_check = registered_version_check(demand_model, DEMAND_MODEL)
recommender_model_version_check = registered_version_check(recommender_model, REC_MODEL)
campaign_uplift_model_version_check = registered_version_check(campaign_uplift_model, UPLIFT_MODEL)

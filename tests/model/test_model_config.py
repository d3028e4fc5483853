"""ModelConfig validation added by the model part."""
import pytest

from come.config.loader import load_config
from come.config.schema import ConfigError


@pytest.mark.parametrize("override, message", [
    ("model.num_feature_levels=2", "num_feature_levels 2 < number of backbone levels 3"),
    ("model.num_queries=0", "num_queries"),
    ("model.dn_label_noise_ratio=1.5", "dn_label_noise_ratio"),
    ("model.backbone.out_indices=[]", "out_indices"),
])
def test_bad_model_values_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_defaults_and_shipped_configs_validate(repo):
    load_config(None)
    load_config(repo / "config" / "config.yaml")
    load_config(repo / "config" / "paper.yaml")

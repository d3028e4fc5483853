"""The MoE family of the FFN slot: tutel-semantics MoE layer, DINO-MoE ("moe"), DAMEX
("damex"), COME ("come"), clustering and routing statistics. Importing this package registers
the three FFN types with `come.model.ffn.register_ffn`."""
from . import come_block, variants  # noqa: F401  (register "moe", "damex", "come")
from .clustering import Fine2Coarse, Mixing, MultiStep, build_clusterer, kmeans
from .come_block import COMEFFN
from .labels import IGNORE_INDEX, expert_blocks, token_labels, trace_targets
from .layer import MoELayer, RoutingInfo
from .routing import balance_loss, route
from .stats import RoutingRecorder, clustering_time_ms, record_routing
from .variants import DamexFFN, MoEFFN, RoutedFFN, set_trace_sources

__all__ = ["COMEFFN", "DamexFFN", "Fine2Coarse", "IGNORE_INDEX", "Mixing", "MoEFFN", "MoELayer",
           "MultiStep", "RoutedFFN", "RoutingInfo", "balance_loss", "build_clusterer", "kmeans",
           "route", "token_labels", "expert_blocks", "trace_targets", "set_trace_sources", "RoutingRecorder", "clustering_time_ms", "record_routing"]

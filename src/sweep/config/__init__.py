"""Sweep configuration: YAML → typed, frozen config objects → the grid of `RunSpec`s.

`sections` holds the config's sections, each with its own checks, and the choices their keys take, and
`root` the sweep itself (`SweepConfig`: name, budgets, seeds) with the executor section;
`loading` reads YAML and `--set` overrides into them; `rules` derives shapes from parameter targets and
learning rates from sizes; `budgets` and `grid` expand a config into `RunSpec`s; `spec` holds `RunSpec`
and the run and trunk ids. `limits` bounds what input may ask for, `strict_yaml` reads YAML strictly,
`trunks` groups wsd runs into trunks and branches. No torch, no files beyond the config itself.
"""

from sweep.config.budgets import budgets, model_shapes, tokens_for_flops, tokens_for_ratio
from sweep.config.grid import expand
from sweep.config.loading import load_config, parse_config
from sweep.config.root import CLUSTERS, ExecutorConfig, SweepConfig
from sweep.config.rules import (
    build_shape,
    depth_for_width,
    kaplan_lr,
    lr_for_params,
    params_rule_limit,
    shape_for_params,
)
from sweep.config.sections import (
    BIN_DTYPES,
    DECAYS,
    DEFAULT_VAL_TOKENS,
    DEVICES,
    DTYPES,
    LR_RULES,
    MALFORMED,
    ORDERS,
    SCHEDULES,
    TOKENIZERS,
    TRACKERS,
    DataConfig,
    EvalConfig,
    ModelConfig,
    SizeConfig,
    TrainConfig,
)
from sweep.config.spec import RunSpec, spec_from_dict
from sweep.model.shape import ACTIVATIONS, NORMS, POSITIONS  # the choices of the model section's keys

__all__ = [
    "DataConfig",
    "SizeConfig",
    "ModelConfig",
    "TrainConfig",
    "EvalConfig",
    "ExecutorConfig",
    "SweepConfig",
    "RunSpec",
    "load_config",
    "parse_config",
    "expand",
    "model_shapes",
    "budgets",
    "tokens_for_flops",
    "tokens_for_ratio",
    "build_shape",
    "depth_for_width",
    "shape_for_params",
    "params_rule_limit",
    "lr_for_params",
    "kaplan_lr",
    "spec_from_dict",
    "DEVICES",
    "DTYPES",
    "BIN_DTYPES",
    "TOKENIZERS",
    "MALFORMED",
    "ORDERS",
    "SCHEDULES",
    "DECAYS",
    "LR_RULES",
    "TRACKERS",
    "CLUSTERS",
    "NORMS",
    "ACTIVATIONS",
    "POSITIONS",
    "DEFAULT_VAL_TOKENS",
]

"""Experiment configuration: the pure schema (``schema``), reading YAML and overrides (``loading``),
the forget spec, sweep constraints and training recipes. Nothing here imports a registry; names are
checked against the registries by :mod:`expunge.resolve`."""
from expunge.config.constraint import Constraint
from expunge.config.forget import ForgetSpec
from expunge.config.loading import (RAY_JOB_ENV, check_storage, deep_merge, describe_validation_error, parse_overrides,
                                    read_config, read_yaml, validate)
from expunge.config.schema import (AuditConfig, DataConfig, ExperimentConfig, FleetConfig, MethodSpec, ModelConfig,
                                   ScalingConfig, Section, SizesConfig, SweepConfig, SweepMethod, TrainConfig,
                                   UnlearnConfig, join_uri, names_to_dicts, safe_name)

__all__ = ["AuditConfig", "Constraint", "DataConfig", "ExperimentConfig", "FleetConfig", "ForgetSpec", "MethodSpec",
           "ModelConfig", "RAY_JOB_ENV", "ScalingConfig", "Section", "SizesConfig", "SweepConfig", "SweepMethod",
           "TrainConfig", "UnlearnConfig", "check_storage", "deep_merge", "describe_validation_error", "join_uri",
           "names_to_dicts", "parse_overrides", "read_config", "read_yaml", "safe_name", "validate"]

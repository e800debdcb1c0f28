"""The pipeline policy (policies/pipeline.yaml): what each stage's findings lead to."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mailsvc.errors import ConfigError


class OnFail(str, Enum):
    REJECT = "reject"
    QUARANTINE = "quarantine"
    OBSERVE = "observe"  # record, do not act: a new check can run safely in production


class OnError(str, Enum):
    TEMPFAIL = "tempfail"
    OBSERVE = "observe"


class StagePolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    on_fail: OnFail = OnFail.REJECT
    on_error: OnError = OnError.TEMPFAIL
    # Per-reason overrides of on_fail, e.g. {"unsigned": "observe"}.
    reasons: dict[str, OnFail] = Field(default_factory=dict)


class PipelinePolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    stages: dict[str, StagePolicy]

    def for_stage(self, name: str) -> StagePolicy:
        return self.stages.get(name, StagePolicy())


def load_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: policy file missing") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def describe_error(path: Path, exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return ConfigError(f"{path}: key '{key}': {first['msg']}")


def load_pipeline_policy(path: Path) -> PipelinePolicy:
    try:
        return PipelinePolicy.model_validate(load_yaml(path))
    except ValidationError as exc:
        raise describe_error(path, exc) from exc

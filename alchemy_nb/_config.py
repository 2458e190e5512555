"""Stage configuration: ``alchemy_nb.toml`` beside the program (or ``[tool.alchemy-nb]``
in ``pyproject.toml``), validated with pydantic.

Example ``alchemy_nb.toml``::

    [stages.staging]
    target = "local"
    auto_deploy = true
    health = [{ worker = "api", path = "/api/health", expect_status = 200 }]

    [stages.prod]
    promote_from = "staging"
    required_reviewers = 1
    allowed_branches = ["main"]
    approval_expiry = "30d"

    [stages.prod.vars]
    GREETING = "hello from prod"

    [teams]
    prod-reviewers = ["bob", "carol"]
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .errors import ConfigError

__all__ = ["AppConfig", "HealthProbe", "StageConfig", "load_config", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> float:
    """``"0s"``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"30d"`` or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    text = str(value).strip()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text):
        raise ValueError(f"invalid duration {value!r}: use e.g. '0s', '15m', '2h', '30d'")
    return sum(float(n) * _UNITS[u] for n, u in parts)


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthProbe(_Strict):
    """An HTTP check of a worker after every deploy, promotion and rollback."""

    worker: str
    """The Worker's resource id."""
    path: str = "/"
    expect_status: int = 200
    expect_body: str | None = None
    """Text the body must contain."""
    deadline: Duration = 30.0
    """How long to keep retrying before the probe fails."""


class StageConfig(_Strict):
    """One stage's settings and protection rules."""

    target: Literal["local", "cloudflare"] = "local"
    vars: dict[str, str] = {}
    """Added to every Worker's plain-text bindings, overriding the program's values."""
    health: list[HealthProbe] = []
    promote_from: str | None = None
    auto_deploy: bool = False
    required_reviewers: int = Field(default=0, ge=0)
    prevent_self_review: bool = True
    allowed_branches: list[str] = []
    """Branches a promoted release may come from (empty: any)."""
    wait_timer: Duration = 0.0
    approval_expiry: Duration = 30 * 86400.0


class AppConfig(_Strict):
    """The app's stage configuration."""

    stages: dict[str, StageConfig] = {}
    teams: dict[str, list[str]] = {}
    """Team name -> members, for Cedar policies (``User in Team::"name"``)."""
    source: str | None = None

    def stage(self, name: str) -> StageConfig:
        """The stage's settings; a stage without a section gets the defaults."""
        return self.stages.get(name) or StageConfig()


def load_config(root: Path) -> AppConfig:
    """Read ``alchemy_nb.toml`` (or ``[tool.alchemy-nb]`` in ``pyproject.toml``) in ``root``."""
    path = root / "alchemy_nb.toml"
    section: Any
    if path.exists():
        section = _read_toml(path)
    else:
        path = root / "pyproject.toml"
        if not path.exists():
            return AppConfig()
        section = _read_toml(path).get("tool", {}).get("alchemy-nb")
        if section is None:
            return AppConfig()
    try:
        config = AppConfig.model_validate({**section, "source": str(path)})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"{key}: unknown key")
            else:
                problems.append(f"{key}: {err['msg']}")
        raise ConfigError(
            "invalid stage configuration: " + "; ".join(problems),
            where=str(path),
            fix="fix the keys named above (see the README's stage configuration section)",
        ) from None
    for name, stage in config.stages.items():
        if stage.promote_from is not None and stage.promote_from not in config.stages:
            raise ConfigError(
                f"stages.{name}.promote_from names {stage.promote_from!r}, which is not a stage",
                where=str(path),
                fix=f"add [stages.{stage.promote_from}] or fix promote_from",
            )
        if stage.promote_from == name:
            raise ConfigError(
                f"stages.{name}.promote_from names the stage itself",
                where=str(path),
                fix="promote from another stage",
            )
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # most apps have no configuration file

    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"the file is not valid TOML: {exc}",
            where=str(path),
            fix="fix the TOML syntax at the line named",
        ) from None

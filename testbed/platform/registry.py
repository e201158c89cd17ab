"""The platform's prosumer registry: who may trade, at which bus, with which energy class.

A registry file (YAML or JSON)::

    prosumers:
      - {id: p01, bus: "LV1.101 Bus 3", energy_class: green}
      - {id: p02, bus: "LV1.101 Bus 7"}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from testbed.domain.errors import UserError
from testbed.domain.textdata import load_json, load_yaml
from testbed.platform.protocol import CLOCK_ID, PLATFORM_ID, PROSUMER_ID_RE
from testbed.platform.services_protocol import OPERATOR_ID


class ProsumerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=PROSUMER_ID_RE.pattern)
    bus: str | None = None
    energy_class: Literal["green", "grey"] | None = None


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prosumers: list[ProsumerEntry]

    @model_validator(mode="after")
    def _unique(self) -> Registry:
        ids = [p.id for p in self.prosumers]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"prosumer ids used more than once: {dup}")
        reserved = sorted({CLOCK_ID, PLATFORM_ID, OPERATOR_ID} & set(ids))
        if reserved:
            raise ValueError(f"prosumer ids reserved for the platform: {reserved}")
        return self

    def rows(self) -> list[tuple[str, str | None, str | None]]:
        return [(p.id, p.bus, p.energy_class) for p in self.prosumers]


def load_registry(path: str | Path) -> Registry:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read the prosumer registry {path}", [str(exc)]) from None
    data = load_json(text, f"prosumer registry {path}") if path.suffix == ".json" else load_yaml(
        text, f"prosumer registry {path}"
    )[1]
    try:
        return Registry.model_validate(data)
    except ValidationError as exc:
        raise UserError(
            f"prosumer registry {path} is invalid",
            [f"{path}: {'.'.join(str(x) for x in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()],
        ) from None

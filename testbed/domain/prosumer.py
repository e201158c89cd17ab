"""What a prosumer brings to a market apart from its devices (pure): the retail tariff it faces and its owner's
preferences. One definition of each, used by the market library, the home's bidding policy, the platform and
the scenario.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, populate_by_name=True)


class Tariff(_Model):
    """The retail tariff at the point of common coupling [currency/kWh]: what a prosumer pays to import and
    gets to export; ``export_price_per_kwh <= import_price_per_kwh`` (no free arbitrage).

    Market case files written before the unit names may still say ``import_price``/``export_price``.
    """

    import_price_per_kwh: float = Field(validation_alias=AliasChoices("import_price_per_kwh", "import_price"))
    export_price_per_kwh: float = Field(validation_alias=AliasChoices("export_price_per_kwh", "export_price"))

    @model_validator(mode="after")
    def _no_arbitrage(self) -> Tariff:
        if self.export_price_per_kwh > self.import_price_per_kwh:
            raise ValueError(
                f"export_price_per_kwh ({self.export_price_per_kwh}) exceeds import_price_per_kwh "
                f"({self.import_price_per_kwh}): buying and selling back would make unbounded profit"
            )
        return self

    @property
    def spread_per_kwh(self) -> float:
        return self.import_price_per_kwh - self.export_price_per_kwh


class Preferences(_Model):
    """What the owner wants from the market.

    - ``class_premium_per_kwh``: extra the owner will pay per kWh bought of an energy class (``green``,
      ``local``, ...); its bids rise by the ``green`` premium, and P2P clearing values trades by class.
    - ``partner_premium_per_kwh``: extra per kWh bought from a named prosumer (P2P clearing).
      Premiums add up; a negative premium is an aversion. They are valuations, not payments.
    - ``subsidy_share``: 0..1, how much of the retail spread a seller gives to its buyers: 0 asks the middle
      of the spread, 1 asks only the retail export price (neighbours get all the gain).
    - ``risk_aversion``: 0..1, the share of forecast surplus or deficit held back from the market against
      forecast error (0 bids all of it, 1 half of it).

    Market case files written before the unit names may still say ``class_premium``/``partner_premium``.
    """

    class_premium_per_kwh: dict[str, float] = Field(
        default_factory=dict, validation_alias=AliasChoices("class_premium_per_kwh", "class_premium")
    )
    partner_premium_per_kwh: dict[str, float] = Field(
        default_factory=dict, validation_alias=AliasChoices("partner_premium_per_kwh", "partner_premium")
    )
    subsidy_share: float = Field(0.0, ge=0, le=1)
    risk_aversion: float = Field(0.0, ge=0, le=1)

    @property
    def green_premium_per_kwh(self) -> float:
        return self.class_premium_per_kwh.get("green", 0.0)

"""The federated power plant's grid-service contracts (pure): contracts as data, members' offers and their
agent's decision, pooling of forecast uncertainty, coalition selection (a MILP solved by HiGHS), delivery
and settlement arithmetic, cooperative games and fair sharing, and finding a DSO's needs from a forecast
power flow. docs/fpp.md walks through the contract life cycle with a worked example.

    advertise          offer               select                 deliver / settle          share
    Contract  ->  decide_offer()  ->  select_coalition()  ->  settle_members()  ->  contract_game() + share()
    (find_dso_contracts() from a forecast; a calendar for TSO, supplier and wholesale contracts)
"""

from testbed.domain.fpp.contract import (
    CONTRACT_SCHEMA_VERSION,
    Contract,
    Location,
    PenaltyRule,
    Window,
    parse_contract,
    parse_contracts,
)
from testbed.domain.fpp.games import ContractGame, Game, TableGame, contract_game, parse_game
from testbed.domain.fpp.offer import (
    BatteryLimits,
    Decline,
    OfferPreferences,
    ServiceOffer,
    decide_offer,
    offer_problems,
    parse_offer,
)
from testbed.domain.fpp.opportunities import DsoTerms, Forecast, find_dso_contracts
from testbed.domain.fpp.pooling import PoolingGain, firm_capacity_kw, pooling_gain
from testbed.domain.fpp.selection import Selection, select_coalition
from testbed.domain.fpp.settlement import MemberDelivery, Settlement, payouts, settle, settle_members
from testbed.domain.fpp.sharing import METHODS, Allocation, Stability, share, stability

__all__ = [
    "CONTRACT_SCHEMA_VERSION", "METHODS", "Allocation", "BatteryLimits", "Contract", "ContractGame", "Decline",
    "DsoTerms", "Forecast", "Game", "Location", "MemberDelivery", "OfferPreferences", "PenaltyRule", "PoolingGain",
    "Selection", "ServiceOffer", "Settlement", "Stability", "TableGame", "Window", "contract_game", "decide_offer",
    "find_dso_contracts", "firm_capacity_kw", "offer_problems", "parse_contract", "parse_contracts", "parse_game",
    "parse_offer", "payouts", "pooling_gain", "select_coalition", "settle", "settle_members", "share", "stability",
]

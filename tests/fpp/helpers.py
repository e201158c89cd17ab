"""Shared data for the FPP tests."""


def contract_data(**changes):
    """A congestion-relief contract: 2 h, 40 kW up at 95 %, two eligible buses (b1 counts fully, b2 80 %)."""
    data = {
        "id": "dso-1", "buyer": "dso",
        "service": {"kind": "congestion_relief", "element": "trafo:0", "limit_kw": 400},
        "window": {"start": "2026-07-01T18:00", "end": "2026-07-01T20:00"},
        "direction": "up", "capacity_kw": 40.0,
        "location": {"eligible_buses": {"b1": 1.0, "b2": 0.8}, "min_sensitivity": 0.5},
        "confidence": 0.95, "availability_price_per_kw_h": 0.05, "utilisation_price_per_kwh": 0.20,
        "penalty": {"kind": "pro_rata"}, "currency": "EUR",
    }
    data.update(changes)
    return data

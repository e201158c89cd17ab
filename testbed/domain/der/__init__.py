"""A prosumer's devices and its energy management: one battery model, the EV fleet, the bidding policy."""

"""Comparing coordination strategies on the same feeder, day, homes and seed (pure): the strategy registry,
the time-of-use tariff, the home and community dispatch optimisations, the bills and the comparison metrics."""

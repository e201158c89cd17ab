"""Test campaigns (pure): the ERIGrid-style test description, its design of experiments, and the analyses
of their results (target metrics, hosting capacity)."""

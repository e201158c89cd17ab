"""Test campaigns on Dask: read and expand a campaign (plan), run its experiments (engine, experiment), and
write summary.parquet and campaign.html (results)."""

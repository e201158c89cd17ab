"""Test and example OpenDSS feeders shipped with the testbed (data only; a package so that they install)."""

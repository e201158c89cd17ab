"""Dask worker preload of the local cluster: import the run API's heavy modules (pandapower, mosaik, pandas)
while the worker starts, which the cluster does while the campaign's experiments are being validated, instead
of in each worker's first experiment."""

import testbed.orchestration.api  # noqa: F401
import testbed.orchestration.service_test  # noqa: F401

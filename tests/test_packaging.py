"""The distribution installs its three import packages and the ``fpp`` command."""

import subprocess
import sys

import testbed
from testbed.domain.errors import UserError


def test_cli_reports_version():
    out = subprocess.run(
        [sys.executable, "-m", "testbed", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"fpp {testbed.__version__}"


def test_user_error_lists_every_problem():
    err = UserError("scenario x.yaml is invalid", ["a: must be > 0", "b: unknown field"])
    assert err.render() == "scenario x.yaml is invalid\n  - a: must be > 0\n  - b: unknown field"

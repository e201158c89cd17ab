"""``fpp hil emulate`` and ``fpp hil scan`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from testbed.cli import main


def test_emulate_serves_devices_and_scan_reads_them():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testbed",
            "hil",
            "emulate",
            "--kind",
            "battery",
            "--port",
            "0",
            "--count",
            "2",
            "--rated-kw",
            "5",
            "--capacity-kwh",
            "10",
            "--duration",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert [d["unit"] for d in info["devices"]] == [1, 2]
        assert info["devices"][0]["address"] == info["devices"][1]["address"]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "testbed",
                "hil",
                "scan",
                "--address",
                info["devices"][1]["address"],
                "--unit",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        scan = json.loads(out.stdout)
        assert scan["models"] == {"1": 66, "701": 153, "702": 50, "704": 65, "705": 31, "711": 22, "713": 7}
        assert scan["701"]["Hz"] == 50.0 and scan["701"]["LLV"] == 400.0
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_bad_options_are_one_paragraph_and_exit_2(capsys):
    assert main(["hil", "emulate", "--kind", "battery", "--port", "70000", "--rated-kw", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--port 70000" in err and "--capacity-kwh" in err and "rated_kw" in err
    assert "Traceback" not in err


def test_scan_of_nothing_is_a_user_error(capsys, refused_port):
    assert main(["hil", "scan", "--address", f"127.0.0.1:{refused_port}", "--timeout", "0.5"]) == 2
    assert "refused" in capsys.readouterr().err

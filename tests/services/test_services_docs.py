"""docs/services.md: its worked example runs and says what the doc says; every service key is documented."""

import re
from pathlib import Path

from testbed.domain.services.frequency import FREQUENCY_SERVICES
from testbed.domain.services.testfile import build_signal, parse_test
from testbed.domain.services.voltage import CHARACTERISTICS
from testbed.orchestration.service_test import run_service_test

DOC = (Path(__file__).resolve().parents[2] / "docs" / "services.md").read_text()


def test_worked_example_passes_as_described():
    text = re.search(r"```yaml\n(.*?)```", DOC, re.S).group(1)
    test = parse_test(text, "docs/services.md")
    r = run_service_test(test, build_signal(test))
    assert r.verdict.status == "pass", r.verdict.summary()
    crit = {c.name: c for c in r.verdict.criteria}
    assert crit["initiation within 0.5 s"].figure <= 0.05 + 1e-9
    assert crit["full delivery within 1 s"].figure <= 0.5 + 1e-9


def test_every_service_is_documented():
    missing = [
        k for k in list(FREQUENCY_SERVICES) + list(CHARACTERISTICS) if k not in DOC and k.rsplit("-", 1)[0] not in DOC
    ]
    assert not missing

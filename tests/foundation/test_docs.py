"""The README's scenario snippet is valid, and docs/scenario.md names every field of the schema."""

import re
from pathlib import Path

from pydantic import BaseModel

from testbed.domain.scenario import models, response
from testbed.domain.scenario.loader import parse_scenario
from testbed.orchestration.plan import prepare

ROOT = Path(__file__).resolve().parents[2]


def test_readme_scenario_snippet_is_valid_against_the_grid():
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"```yaml\n(.*?)```", readme, re.S).group(1)
    scenario = parse_scenario(snippet, "README.md")
    plan = prepare(scenario, base_dir=ROOT)
    assert len(plan.prosumers) == 119  # 118 households of the fleet + the school


def test_every_schema_field_is_documented():
    doc = (ROOT / "docs" / "scenario.md").read_text()
    missing = []
    for module in (models, response):
        for name in dir(module):
            model = getattr(module, name)
            if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == module.__name__:
                missing += [f"{name}.{f}" for f in model.model_fields if f"`{f}`" not in doc]
    assert not missing, f"docs/scenario.md does not mention: {missing}"

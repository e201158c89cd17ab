import pytest

from .helpers import contract_data


@pytest.fixture
def contract():
    from testbed.domain.fpp import parse_contract

    return parse_contract(contract_data())

import pytest


# The tenant of the fixtures enables this plugin only.
@pytest.fixture(scope="session")
def powerbuyer_plugins() -> tuple[str, ...]:
    return ("travel",)

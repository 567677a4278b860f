import pytest
from fastapi.testclient import TestClient
from svc_helpers import ORACLE_KEY

from margin_engine.oracle.signing import dump_public_key
from margin_engine.service.app import create_app
from margin_engine.service.settings import Settings


@pytest.fixture
def profile_path(tmp_path):
    """The deribit profile with one registered oracle source, as a file the service reads."""
    from importlib import resources

    text = (resources.files("margin_engine.profiles") / "deribit.toml").read_text()
    text += f'\n[oracle.sources]\ndesk-feed = "{dump_public_key(ORACLE_KEY.public_key())}"\n'
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return path


@pytest.fixture
def service(tmp_path, profile_path):
    """A running app on a fresh SQLite journal, with a key for every role."""
    app = create_app(
        Settings(
            db_url=str(tmp_path / "svc.db"),
            profile=str(profile_path),
            init=True,
            rate_limit_per_s=1000,
            rate_limit_burst=1000,
        )
    )
    with TestClient(app) as client:
        keys = app.state.keys
        client.keys = {
            "admin": keys.create("admin"),
            "alice": keys.create("trader", "alice"),
            "bob": keys.create("trader", "bob"),
            "keeper": keys.create("keeper", "keeper"),
            "scout": keys.create("keeper"),  # an unbound keeper key
            "custody": keys.create("custody"),
            "oracle": keys.create("oracle"),
        }
        client.app_ref = app
        yield client

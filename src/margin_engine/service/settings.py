"""Service settings, from arguments or MARGIN_ENGINE_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from margin_engine.margin.profile import load_profile, profile_text

DEFAULT_PROFILE = "deribit"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARGIN_ENGINE_", frozen=True)

    db_url: str = "sqlite:///margin-engine.db"
    # packaged name or a .toml path. None: an existing journal's own profile, deribit for a new one;
    # given, it must be the profile the journal holds (a journal keeps the profile it was created with)
    profile: str | None = None
    init: bool = False  # create the journal when the database holds none (never silently)
    rate_limit_per_s: float = Field(default=200.0, gt=0)
    rate_limit_burst: float = Field(default=400.0, gt=0)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    # requests without a valid key, per client address: enough for a desk login, not for guessing
    anonymous_rate_limit_per_s: float = Field(default=5.0, gt=0)
    anonymous_rate_limit_burst: float = Field(default=20.0, gt=0)

    @property
    def new_profile(self) -> str:
        """The profile a new journal is created with."""
        return self.profile or DEFAULT_PROFILE

    def profile_text(self) -> str:
        """The profile's TOML text (validated): the journal keeps it, so a replay uses the same parameters."""
        load_profile(self.new_profile)
        return profile_text(self.new_profile)

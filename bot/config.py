"""Settings, read from the environment and ``.env`` (pydantic-settings).

``load_settings`` turns every validation problem into one line naming the variable,
without echoing the value (it may be a secret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError

from bot.catalog import (
    SANDBOX_LIKE,
    UnknownModel,
    default_model,
    get_model,
    models_for,
    sandbox_like,
)

ProviderName = Literal["apixo", "fal", "replicate", "aivideoapi", "pixazo", "sandbox"]
# The providers that make videos for money (what FALLBACK_PROVIDERS may name).
PAID_PROVIDERS = ("apixo", "fal", "replicate", "aivideoapi", "pixazo")


class SettingsError(Exception):
    """One or more settings are missing or malformed; ``problems`` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _http_url(value: str | None, *, name: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, like https://{name}.example.com")
    return value.rstrip("/")


def _postgres_url(value: str) -> None:
    """Raise ValueError (never quoting the URL: it may hold a password) unless ``value``
    is a libpq-style postgresql:// URL."""
    example = "write it like postgresql://user:password@host:5432/dbname"
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"is not a valid URL; {example}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"must be a postgresql:// URL; {example}")
    if port == 0:
        raise ValueError(f"has port 0; {example}")


def url_password(url: str | None) -> str | None:
    """The password in a URL, if any (so that logs can hide it)."""
    try:
        return urlsplit(url).password if url else None
    except ValueError:
        return None


def postgres_url_problem(value: str) -> str | None:
    """What is wrong with a postgresql:// URL, or None (never quoting it)."""
    try:
        _postgres_url(value)
    except ValueError as exc:
        return str(exc)
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
    )

    discord_token: SecretStr | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str | None = None
    dev_guild_id: int | None = Field(default=None, gt=0)

    provider: ProviderName = "sandbox"
    model: str = ""  # empty: the provider's default live model

    apixo_api_key: SecretStr | None = None
    apixo_base_url: str = "https://api.apixo.ai/api/v1"
    aivideoapi_api_key: SecretStr | None = None
    aivideoapi_base_url: str = "https://api.aivideoapi.ai"
    pixazo_api_key: SecretStr | None = None
    pixazo_base_url: str = "https://gateway.pixazo.ai"
    fal_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("fal_api_key", "fal_key"))
    fal_base_url: str = "https://queue.fal.run"
    fal_jwks_url: str = "https://rest.alpha.fal.ai/.well-known/jwks.json"
    replicate_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("replicate_api_key", "replicate_api_token"))
    replicate_base_url: str = "https://api.replicate.com/v1"

    public_base_url: str | None = None
    default_quota_seconds: int = Field(default=120, ge=0)
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(default=8080, ge=0, le=65535)
    database_path: Path = Path("data/bot.sqlite3")
    database_url: SecretStr | None = None  # postgresql://...: PostgreSQL instead of SQLite
    poll_first_s: float | None = Field(default=None, gt=0)
    poll_interval_s: float | None = Field(default=None, gt=0)
    # Scale-out: the gateway shards this process runs (unset: Discord's recommended count,
    # all in this process) and how long a silent process keeps its jobs.
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: Annotated[list[int] | None, NoDecode] = None
    job_lease_s: float = Field(default=30.0, gt=0)
    # A process's identity on the leases it holds, stable across restarts (unset: the host
    # name and the shard ids it runs); two live processes never share one.
    instance_id: str | None = Field(default=None, min_length=1, max_length=120)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # unset: no /metrics
    metrics_host: str = "0.0.0.0"
    # Providers tried in order when PROVIDER cannot take a job (credit, key, model, outage).
    fallback_providers: Annotated[list[ProviderName], NoDecode] = Field(default_factory=list)
    # AUDIO_DEFAULT: whether a model that can make sound does when the member does not say.
    audio_default: Annotated[bool, NoDecode] = True

    # Beyond the contract: tuning with safe defaults.
    sandbox_delay_s: float = Field(default=3.0, ge=0)
    # SANDBOX_LIKE: whose live models the sandbox mirrors (apixo, fal or replicate).
    sandbox_like: str = "apixo"
    # MODEL_PRICES: provider/model=dollars per second, comma separated.
    model_prices: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    job_timeout_s: float = Field(default=30 * 60, gt=0)
    max_video_bytes: int = Field(default=500 * 1024 * 1024, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator(
        "discord_api_base_url",
        "discord_gateway_url",
        "apixo_base_url",
        "aivideoapi_base_url",
        "pixazo_base_url",
        "fal_base_url",
        "fal_jwks_url",
        "replicate_base_url",
        "public_base_url",
    )
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(("ws://", "wss://")):
            return value.rstrip("/")
        return _http_url(value, name="host")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _postgres_url(value.get_secret_value())
        return value

    @field_validator("provider", "log_level", "sandbox_like", mode="before")
    @classmethod
    def _lower_provider(cls, value: object, info: object) -> object:
        if isinstance(value, str):
            field = getattr(info, "field_name", "")
            return value.strip().upper() if field == "log_level" else value.strip().lower()
        return value

    @field_validator("model_prices", mode="before")
    @classmethod
    def _parse_prices(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        prices: dict[str, float] = {}
        for item in filter(None, (p.strip() for p in value.split(","))):
            key, sep, price = item.partition("=")
            if not sep or "/" not in key:
                raise ValueError("write it as provider/model=price, e.g. pixazo/sora-2-pro=0.30")
            try:
                prices[key.strip()] = float(price)
            except ValueError:
                raise ValueError(f"the price for {key.strip()} is not a number") from None
        return prices

    @field_validator("fallback_providers", mode="before")
    @classmethod
    def _parse_fallbacks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        names = [p.strip().lower() for p in value.split(",") if p.strip()]
        for name in names:
            if name not in PAID_PROVIDERS:
                raise ValueError(
                    f"'{name}' is not a provider that makes videos; use "
                    f"{', '.join(PAID_PROVIDERS[:-1])} or {PAID_PROVIDERS[-1]}, comma separated")
        if len(set(names)) != len(names):
            raise ValueError("names a provider more than once")
        return names

    @field_validator("audio_default", mode="before")
    @classmethod
    def _parse_audio_default(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        word = value.strip().lower()
        if word in ("on", "true", "yes", "1"):
            return True
        if word in ("off", "false", "no", "0"):
            return False
        raise ValueError("must be on or off")

    @field_validator("instance_id", mode="before")
    @classmethod
    def _check_instance_id(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if value and not all(ch.isalnum() or ch in "-_.:@" for ch in value):
                raise ValueError("use letters, digits and - _ . : @ only, e.g. bot-1")
        return value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _parse_shard_ids(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        items = [p.strip() for p in value.split(",") if p.strip()]
        if not items or not all(p.isdigit() for p in items):
            raise ValueError("write the shard ids as whole numbers separated by commas, e.g. 0,1")
        ids = [int(p) for p in items]
        if len(set(ids)) != len(ids):
            raise ValueError("names a shard more than once")
        return ids

    @model_validator(mode="after")
    def _check_shards(self) -> Settings:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("SHARD_IDS: needs SHARD_COUNT, the total number of shards")
        too_big = [n for n in self.shard_ids if n >= self.shard_count]
        if too_big:
            raise ValueError(
                f"SHARD_IDS: shard {too_big[0]} does not exist with SHARD_COUNT="
                f"{self.shard_count} (ids run from 0 to {self.shard_count - 1})"
            )
        return self

    @property
    def runs_shard_zero(self) -> bool:
        """The process that runs shard 0 (or every shard) is the one that syncs commands."""
        return self.shard_ids is None or 0 in self.shard_ids

    @model_validator(mode="after")
    def _check_model_and_key(self) -> Settings:
        problems: list[str] = []
        if self.sandbox_like not in SANDBOX_LIKE:
            problems.append(f"SANDBOX_LIKE: must be one of {', '.join(SANDBOX_LIKE)}")
        else:
            sandbox_like(self.sandbox_like)  # the sandbox's catalog follows it
        if not self.model:  # unset: the provider's default live model (else its first)
            chosen = default_model(self.provider) or next(iter(models_for(self.provider)), None)
            self.model = chosen.id if chosen else "sora-2"
        try:
            get_model(self.provider, self.model)
        except UnknownModel as exc:
            problems.append(f"MODEL: {exc}")
        if self.provider != "sandbox" and self.api_key(self.provider) is None:
            name = self.provider.upper()
            problems.append(f"{name}_API_KEY: required when PROVIDER={self.provider}")
        if self.metrics_port and self.metrics_port == self.webhook_port:
            problems.append("METRICS_PORT: must differ from WEBHOOK_PORT (metrics are never "
                            "served on the public webhook port)")
        for fallback in self.fallback_providers:
            if fallback == self.provider:
                problems.append(f"FALLBACK_PROVIDERS: {fallback} is already PROVIDER")
            elif self.api_key(fallback) is None:
                problems.append(f"{fallback.upper()}_API_KEY: required when "
                                f"FALLBACK_PROVIDERS names {fallback}")
        if problems:
            raise ValueError(" | ".join(problems))
        return self

    def api_key(self, provider: str) -> str | None:
        secret: SecretStr | None = getattr(self, f"{provider}_api_key", None)
        return secret.get_secret_value() if secret is not None else None

    @property
    def provider_chain(self) -> list[str]:
        """PROVIDER, then each fallback in order."""
        return [self.provider, *self.fallback_providers]

    def base_url(self, provider: str) -> str:
        return str(getattr(self, f"{provider}_base_url"))

    @property
    def process_identity(self) -> str:
        """INSTANCE_ID, else the host name and the shard ids this process runs: stable
        across restarts, so a restarted process knows its own jobs."""
        if self.instance_id:
            return self.instance_id
        import socket

        shards = ",".join(map(str, self.shard_ids)) if self.shard_ids is not None else "all"
        return f"{socket.gethostname()}:shards-{shards}"


_SECRET_FIELDS = {"discord_token", "apixo_api_key", "aivideoapi_api_key", "pixazo_api_key",
                  "fal_api_key", "replicate_api_key", "fal_key", "replicate_api_token"}


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per problem: VARIABLE: what is wrong (never the value itself)."""
    lines: list[str] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(p) for p in err.get("loc", ()) if p != "__root__"]
        msg = str(err.get("msg", "is invalid"))
        msg = msg.removeprefix("Value error, ")
        if not loc:
            lines.extend(msg.split(" | "))
            continue
        var = loc[0].upper()
        if loc[0] in _SECRET_FIELDS:
            msg = "is malformed"
        lines.append(f"{var}: {_plain(msg)}")
    return lines


def _plain(msg: str) -> str:
    replacements = {
        "Input should be a valid integer, unable to parse string as an integer": (
            "must be a whole number"
        ),
        "Input should be a valid integer": "must be a whole number",
        "Input should be a valid number": "must be a number",
        "Input should be ": "must be ",
        "Input is not a valid integer": "must be a whole number",
    }
    for old, new in replacements.items():
        if msg.startswith(old):
            return new + msg[len(old):]
    return msg[:1].lower() + msg[1:]


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise SettingsError with one line per problem."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None
    except _SourceError as exc:  # a value pydantic-settings could not even decode
        field = str(exc).split('"')[1] if '"' in str(exc) else "a setting"
        raise SettingsError([f"{field.upper()}: could not be read"]) from None

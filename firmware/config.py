"""The station's configuration: `/etc/loa/station.toml`, validated strictly.

Every section forbids unknown keys (a typo is an error, not a silently ignored setting), every number has
bounds and a unit in its name, and all problems are reported at once with their key path, e.g.
`policy.windows[1].start: "7h" is not a time: use HH:MM, e.g. 05:30`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from firmware.core.policy import Policy
from firmware.core.policydoc import PolicyBounds, bounds_problems
from firmware.core.validation import TimeZoneName, check_id, format_validation_error

Id = Annotated[str, AfterValidator(check_id)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationIdentity(_Section):
    district: Id
    commune: Id
    id: Id
    name: str = Field(default="", max_length=200, description="human name, e.g. 'Loa thôn 1'")
    location: str = Field(default="", max_length=200)
    timezone: TimeZoneName = "Asia/Ho_Chi_Minh"

    @property
    def scope(self) -> str:
        return f"{self.district}/{self.commune}/{self.id}"


class AudioConfig(_Section):
    device: str | int | None = Field(
        default=None, description="sound device: name substring or index; unset = system default"
    )
    rate_hz: int = Field(default=48000, ge=8000, le=96000)
    block_ms: int = Field(default=20, ge=5, le=200)
    buffer_blocks: int = Field(default=2, ge=1, le=16, description="sink buffer, in blocks")
    fade_ms: int = Field(default=30, ge=0, le=2000)
    ramp_ms: int = Field(default=10, ge=10, le=2000, description="gain ramps; >= 10 ms avoids clicks")
    wav_out: str | None = Field(default=None, description="write to this WAV file instead of a device")


class GpioConfig(_Section):
    enabled: bool = True
    amp_pin: int | None = Field(default=17, ge=0, le=27)
    amp_active_high: bool = True
    amp_warmup_s: float = Field(default=1.5, ge=0, le=30)
    amp_hang_s: float = Field(default=30.0, ge=0, le=3600)
    led_pin: int | None = Field(default=27, ge=0, le=27)
    button_pin: int | None = Field(default=22, ge=0, le=27)
    button_long_press_s: float = Field(default=2.0, ge=0.5, le=10)
    mains_pin: int | None = Field(default=None, ge=0, le=27, description="optional mains-fail input")
    mains_active_high: bool = True


class BrokerConfig(_Section):
    url: str = Field(default="", description="mqtt://host:1883 or mqtts://host:8883; empty = no broker")
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=600)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not re.match(r"^mqtts?://[^/:]+(:\d{1,5})?/?$", v):
            raise ValueError(f'"{v}" is not a broker URL: use mqtt://host:port or mqtts://host:port')
        return v


class TrustConfig(_Section):
    key_files: tuple[str, ...] = Field(default=(), description="district Ed25519 public keys (trust anchors)")
    max_skew_s: int = Field(default=300, ge=0, le=86400)


class PathsConfig(_Section):
    state_dir: str = "/var/lib/loa"
    content_dir: str | None = Field(default=None, description="default: <state_dir>/content")
    schedule: str | None = Field(default=None, description="initial schedule file; default: none")


class ReportingConfig(_Section):
    telemetry_interval_s: int = Field(default=300, ge=10, le=86400)
    outbox_max_mb: float = Field(default=50.0, ge=1, le=10000)


class ContentConfig(_Section):
    prefetch_hours: float = Field(default=48.0, ge=1, le=24 * 14)
    cache_quota_mb: float = Field(default=2048.0, ge=10, le=1_000_000)
    fallback: str = Field(default="notice", pattern="^(notice|silence)$")


class StationConfig(_Section):
    station: StationIdentity
    policy: Policy
    policy_bounds: PolicyBounds = PolicyBounds()  # the district's, set at provisioning; bounds pushed policies
    audio: AudioConfig = AudioConfig()
    gpio: GpioConfig = GpioConfig()
    broker: BrokerConfig = BrokerConfig()
    trust: TrustConfig = TrustConfig()
    paths: PathsConfig = PathsConfig()
    reporting: ReportingConfig = ReportingConfig()
    content: ContentConfig = ContentConfig()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.station.timezone)

    @model_validator(mode="after")
    def _policy_inside_bounds(self) -> StationConfig:
        problems = bounds_problems(self.policy, self.policy_bounds)
        if problems:
            raise ValueError("[policy] is outside [policy_bounds]: " + "; ".join(problems))
        return self


class ConfigError(Exception):
    """Every problem found in a config, each as `where: what`."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))


def parse_config_text(text: str, source: str = "<config>") -> StationConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, [f"not valid TOML: {e}"]) from None
    try:
        return StationConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(source, format_validation_error(e, StationConfig)) from None


def load_config(path: str | Path) -> StationConfig:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(str(p), [f"cannot read: {e.strerror or e}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(str(p), [f"not UTF-8 text (byte {e.start})"]) from None
    return parse_config_text(text, str(p))


def config_hash(cfg: StationConfig) -> str:
    """A short stable hash of the effective config, reported in the station's status."""
    return hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:12]


def load_config_or_report(path: str | Path) -> StationConfig | None:
    """For commands: the config, or None after printing every problem to stderr (the caller exits 1)."""
    import sys

    try:
        return load_config(path)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return None

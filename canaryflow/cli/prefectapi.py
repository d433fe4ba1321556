"""One way to reach Prefect, for every command that needs it (rollout, promote, abort, demo).

The API is, in this order:

1. ``PREFECT_API_URL`` when it is set;
2. the ``PREFECT_API_URL`` of the active Prefect profile (``prefect profile use``, read from
   ``profiles.toml`` without importing Prefect);
3. canaryflow's local server (``canaryflow dev prefect up``), when it runs.

`connect` finds it and asks its ``/health`` within a second; an API that is not set anywhere or
does not answer is a `TriggerUnavailableError` in one line that says what to set or start, before
anything is created; an address that is not an http(s) URL is an `InputError` (a setting to
fix). `use` then points this process's Prefect at it, quietly: Prefect's console
logs (and with them its tracebacks) stay off the terminal unless ``--debug``, while the API still
receives every run's logs, so the Prefect UI shows them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from canaryflow.dev.prefectserver import default_home, running_server
from canaryflow.errors import InputError, TriggerUnavailableError

__all__ = ["PrefectApi", "connect", "find_api", "locate", "quiet_prefect", "use"]

_HOW = (
    "set PREFECT_API_URL to your Prefect server's API (e.g. http://127.0.0.1:4200/api), "
    "or start canaryflow's local one: canaryflow dev prefect up"
)


@dataclass(frozen=True, slots=True)
class PrefectApi:
    """A Prefect API and where its address came from (said in errors)."""

    url: str
    source: str


def _profile_api(env: Mapping[str, str]) -> PrefectApi | None:
    home = Path(env.get("PREFECT_HOME") or Path.home() / ".prefect")
    path = Path(env.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    name = env.get("PREFECT_PROFILE") or profiles.get("active")
    profile = (profiles.get("profiles") or {}).get(name) if isinstance(name, str) else None
    url = profile.get("PREFECT_API_URL") if isinstance(profile, dict) else None
    return PrefectApi(str(url), f"Prefect profile {name!r} ({path})") if url else None


def find_api(env: Mapping[str, str]) -> PrefectApi | None:
    """Where the Prefect API is said to be (not yet asked), or None."""
    if env.get("PREFECT_API_URL"):
        return PrefectApi(env["PREFECT_API_URL"], "PREFECT_API_URL")
    from_profile = _profile_api(env)
    if from_profile is not None:
        return from_profile
    local = running_server(default_home(env))
    if local is not None:
        return PrefectApi(local.api_url, "canaryflow's local server (canaryflow dev prefect up)")
    return None


def locate(env: Mapping[str, str]) -> PrefectApi:
    """The Prefect API `find_api` names, not asked yet: `TriggerUnavailableError` when none is set
    or runs, `InputError` for an address that is not an http(s) URL. For a process that must start
    while Prefect is down (the webhook receiver: pushes wait in its outbox)."""
    api = find_api(env)
    if api is None:
        raise TriggerUnavailableError(
            f"no Prefect API: PREFECT_API_URL is not set and no local server runs; {_HOW}"
        )
    parts = urlsplit(api.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:  # a setting to fix, not an outage
        raise InputError(f"the Prefect API URL {api.url!r} (from {api.source}) is not an http(s) URL; {_HOW}")
    return api


def connect(env: Mapping[str, str], *, timeout: float = 1.0) -> PrefectApi:
    """The Prefect API, once it answered ``/health``; `TriggerUnavailableError` otherwise."""
    api = locate(env)
    try:
        answer = httpx.get(f"{api.url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as exc:
        reason = type(exc).__name__ if not str(exc) else str(exc)
        raise TriggerUnavailableError(
            f"the Prefect API at {api.url} (from {api.source}) does not answer ({reason}); {_HOW}"
        ) from exc
    if answer.status_code != 200:
        raise TriggerUnavailableError(
            f"the Prefect API at {api.url} (from {api.source}) answered /health with "
            f"{answer.status_code}; is it a Prefect server's API (ending in /api)?"
        )
    return api


def quiet_prefect(env: MutableMapping[str, str], *, debug: bool) -> None:
    """Settings for this process's Prefect, before it is imported: no telemetry, and (unless
    `debug`) no console logging: the command prints its own lines."""
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false")
    if not debug:
        env["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"
        env["PREFECT_INTERNAL_LOGGING_LEVEL"] = "CRITICAL"


def use(api: PrefectApi, *, debug: bool, env: MutableMapping[str, str] | None = None) -> None:
    """Point this process's Prefect at `api` (call before Prefect is imported)."""
    target = os.environ if env is None else env
    target["PREFECT_API_URL"] = api.url
    target["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "false"
    quiet_prefect(target, debug=debug)

"""Cloudflare credentials: the environment first, then a stored profile.

Profiles live in ``$XDG_CONFIG_HOME/alchemy-nb/cloudflare.json`` (default
``~/.config/alchemy-nb``), written with 0600 permissions (the folder 0700). An environment
variable that is set always wins over the profile's value for the same setting: a profile
only fills in what the environment leaves unset.

Example::

    save_profile("work", token="...", account_id="0123...")
    creds = resolve_credentials("work")   # CLOUDFLARE_API_TOKEN, if set, still wins
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ._client import DEFAULT_BASE_URL, Credentials

__all__ = [
    "delete_profile",
    "list_profiles",
    "profiles_path",
    "resolve_credentials",
    "save_profile",
]

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def profiles_path() -> Path:
    """Where profiles are stored."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "alchemy-nb" / "cloudflare.json"


def _load() -> dict[str, dict[str, Any]]:
    path = profiles_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"the Cloudflare profiles file cannot be read: {exc}",
            where=str(path),
            fix="fix or delete the file, then log in again: alchemy-nb cloudflare login",
        ) from None
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, dict):
        raise ConfigError(
            "the Cloudflare profiles file has no 'profiles' object",
            where=str(path),
            fix="delete the file and log in again: alchemy-nb cloudflare login",
        )
    return profiles


def _write(profiles: dict[str, dict[str, Any]]) -> None:
    path = profiles_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"profiles": profiles}, fh, indent=1, sort_keys=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _check_name(name: str) -> None:
    if not name or not set(name) <= _NAME_CHARS:
        raise ConfigError(
            f"invalid profile name {name!r}",
            fix="use letters, digits, '_', '-' or '.'",
        )


def save_profile(
    name: str, *, token: str, account_id: str | None = None, base_url: str | None = None
) -> Path:
    """Store (or replace) a profile; returns the file's path."""
    _check_name(name)
    profiles = _load()
    entry: dict[str, Any] = {"token": token}
    if account_id:
        entry["account_id"] = account_id
    if base_url:
        entry["base_url"] = base_url
    profiles[name] = entry
    _write(profiles)
    return profiles_path()


def delete_profile(name: str) -> bool:
    """Remove a profile; False when there was none by that name."""
    profiles = _load()
    if name not in profiles:
        return False
    del profiles[name]
    _write(profiles)
    return True


def list_profiles() -> dict[str, dict[str, Any]]:
    """Profiles by name, with the token masked."""
    return {
        name: {**{k: v for k, v in entry.items() if k != "token"}, "token": "***"}
        for name, entry in sorted(_load().items())
    }


def resolve_credentials(profile: str | None = None) -> Credentials:
    """The credentials to use: each of ``CLOUDFLARE_API_TOKEN``, ``CLOUDFLARE_ACCOUNT_ID``
    and ``CLOUDFLARE_API_BASE_URL`` from the environment when set, else from the profile
    (``profile``, else ``CLOUDFLARE_PROFILE``, else one named ``default`` if stored)."""
    name = profile or os.environ.get("CLOUDFLARE_PROFILE") or None
    stored: dict[str, Any] = {}
    if name is not None:
        _check_name(name)
        profiles = _load()
        if name not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(
                f"no Cloudflare profile named {name!r} (stored: {known})",
                where=str(profiles_path()),
                fix=f"create it: alchemy-nb cloudflare login --profile {name}",
            )
        stored = profiles[name]
    elif profiles_path().exists():
        stored = _load().get("default", {})
        name = "default" if stored else None
    token = os.environ.get("CLOUDFLARE_API_TOKEN") or stored.get("token")
    if not token:
        raise ConfigError(
            "no Cloudflare API token: CLOUDFLARE_API_TOKEN is not set and no profile provides one",
            fix="set CLOUDFLARE_API_TOKEN, or store one: alchemy-nb cloudflare login",
        )
    from_env = bool(os.environ.get("CLOUDFLARE_API_TOKEN"))
    return Credentials(
        token=token,
        account_id=os.environ.get("CLOUDFLARE_ACCOUNT_ID") or stored.get("account_id"),
        base_url=os.environ.get("CLOUDFLARE_API_BASE_URL")
        or stored.get("base_url")
        or DEFAULT_BASE_URL,
        source="environment" if from_env or name is None else f"profile {name}",
    )

"""``alchemy-nb import wrangler``: write an ``alchemy_run.py`` to keep editing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._config import WranglerConfig, find_wrangler, load_wrangler, var_text
from ._program import DEFAULT_PROGRAM, Declaration, Use, declarations, slug

__all__ = ["import_wrangler", "render_program", "render_stage_config"]

_INDENT = "    "


def _literal(value: Any, depth: int) -> str:
    """A Python literal, wrapped one item per line when it is long."""
    if isinstance(value, Use):
        return value.var
    if isinstance(value, dict):
        items = [f"{json.dumps(k)}: {_literal(v, depth + 1)}" for k, v in value.items()]
        return _wrap("{", items, "}", depth)
    if isinstance(value, list):
        return _wrap("[", [_literal(v, depth + 1) for v in value], "]", depth)
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _wrap(open_: str, items: list[str], close: str, depth: int) -> str:
    flat = open_ + ", ".join(items) + close
    if len(flat) + depth * 4 < 80 and "\n" not in flat:
        return flat
    inner = _INDENT * (depth + 1)
    return open_ + "\n" + "".join(f"{inner}{i},\n" for i in items) + _INDENT * depth + close


def _declare(decl: Declaration, depth: int) -> str:
    args = [json.dumps(decl.id)] + [f"{k}={_literal(v, depth + 1)}" for k, v in decl.kwargs.items()]
    call = f"{decl.var} = {decl.kind}(" + ", ".join(args) + ")"
    if len(call) + depth * 4 <= 96 and "\n" not in call:
        return _INDENT * depth + call
    inner = _INDENT * (depth + 1)
    body = "".join(f"{inner}{a},\n" for a in args)
    return f"{_INDENT * depth}{decl.var} = {decl.kind}(\n{body}{_INDENT * depth})"


def _body(decls: list[Declaration], depth: int) -> list[str]:
    lines = [_declare(d, depth) for d in decls]
    lines.append(f'{_INDENT * depth}return {{"url": {decls[-1].var}.url}}')
    return lines


def render_program(config: WranglerConfig, *, vars_in_stage_config: bool = True) -> str:
    """The ``alchemy_run.py`` equivalent to ``config``: one function per distinct
    environment, the top level for every other stage. With ``vars_in_stage_config``,
    ``[env.*]`` vars are left to ``alchemy_nb.toml`` (see :func:`render_stage_config`).

    Example::

        print(render_program(load_wrangler("wrangler.toml")))
    """
    top = declarations(config, "")
    kinds = {d.kind for d in top}
    envs: dict[str, list[Declaration]] = {}
    for name in config.env:
        envs[name] = declarations(config, name, with_vars=not vars_in_stage_config)
        kinds.update(d.kind for d in envs[name])
    source = Path(config.source).name
    lines = [
        f'"""{config.name}: imported from {source} by `alchemy-nb import wrangler`.',
        "",
        "Deploy with `alchemy-nb deploy --stage dev`, develop with `alchemy-nb dev`.",
    ]
    if envs:
        lines += [
            "Stages named after an [env.*] section get that section's resources; their vars",
            "are in alchemy_nb.toml (wrangler does not inherit vars into an environment).",
        ]
    lines += [
        '"""',
        "",
        "import alchemy_nb",
        f"from alchemy_nb.cloudflare import {', '.join(sorted(kinds))}",
        "",
        f"app = alchemy_nb.App({json.dumps(slug(config.name or 'worker'))})",
        "",
        "",
        "@app.program",
        "def infra(stage):",
    ]
    distinct: dict[str, list[str]] = {}
    for name, decls in envs.items():
        text = "\n".join(_body(decls, 2))
        distinct.setdefault(text, []).append(name)
    for text, names in distinct.items():
        test = (
            f"stage.name == {json.dumps(names[0])}"
            if len(names) == 1
            else f"stage.name in ({', '.join(json.dumps(n) for n in names)})"
        )
        lines += [f"    if {test}:  # [env.{names[0]}]" if len(names) == 1 else f"    if {test}:"]
        lines += [text]
    lines += _body(top, 1)
    return "\n".join(lines) + "\n"


def render_stage_config(config: WranglerConfig) -> str | None:
    """``alchemy_nb.toml`` with a stage per ``[env.*]`` section (its vars) and ``dev`` for
    the top level; None when the configuration has no environments.

    Example::

        text = render_stage_config(load_wrangler("wrangler.toml"))
    """
    if not config.env:
        return None
    lines = [
        f"# Stages imported from {Path(config.source).name}: one per [env.*] section, and dev",
        "# for the top level. Add a [stages.NAME] section for every other stage you deploy.",
    ]
    stages = ["dev", *config.env] if "dev" not in config.env else list(config.env)
    for name in stages:
        lines += ["", f"[stages.{_toml_key(name)}]"]
        env = config.for_stage(name) if name in config.env else None
        if env is not None and env.vars:
            lines += ["", f"[stages.{_toml_key(name)}.vars]"]
            lines += [f"{_toml_key(k)} = {json.dumps(var_text(v))}" for k, v in env.vars.items()]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else json.dumps(key)


def import_wrangler(
    path: str | Path | None = None, *, out: str | Path | None = None, force: bool = False
) -> list[Path]:
    """Write ``alchemy_run.py`` (and ``alchemy_nb.toml`` for ``[env.*]`` vars) beside the
    wrangler configuration at ``path`` (a file or a folder; default: the current one).
    Refuses to overwrite either file unless ``force``. Returns the files written.

    Example::

        import_wrangler("my-worker/")   # my-worker/alchemy_run.py
    """
    given = Path(path or ".")
    file = find_wrangler(given) if given.is_dir() else given
    if file is None or not file.is_file():
        raise ConfigError(
            f"no wrangler configuration at {given}",
            where=str(given),
            fix="point at wrangler.toml or wrangler.jsonc, or at the folder holding it",
        )
    config = load_wrangler(file)
    program = Path(out) if out else file.parent / DEFAULT_PROGRAM
    stage_text = render_stage_config(config)
    targets = [(program, render_program(config))]
    if stage_text is not None:
        targets.append((file.parent / "alchemy_nb.toml", stage_text))
    for target, _ in targets:
        if target.exists() and not force:
            raise ConfigError(
                f"{target} already exists",
                where=str(target),
                fix="move it away, or pass --force to overwrite it",
            )
    for target, text in targets:
        target.write_text(text)
    return [target for target, _ in targets]

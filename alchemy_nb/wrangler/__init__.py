"""Bring your own wrangler project: run it, import it, export it.

- Run: in a folder with ``wrangler.toml``/``wrangler.jsonc`` and no ``alchemy_run.py``,
  ``alchemy-nb dev`` and ``alchemy-nb deploy --stage S`` deploy what the configuration
  describes (``[env.S]`` for stage ``S``) to the local target.
- Import: ``alchemy-nb import wrangler`` writes an ``alchemy_run.py`` to keep editing.
- Export: ``alchemy-nb export wrangler --stage S`` writes ``wrangler.jsonc``.

Example::

    from alchemy_nb.wrangler import load_wrangler, render_program, wrangler_app

    config = load_wrangler("wrangler.toml")
    print(render_program(config))
    app = wrangler_app("wrangler.toml")
    await app.deploy("dev")
"""

from .._lazy import lazy_exports

__all__ = [
    "WranglerConfig",
    "WranglerEnv",
    "declarations",
    "export_wrangler",
    "find_wrangler",
    "import_wrangler",
    "load_wrangler",
    "loads_jsonc",
    "render_program",
    "render_stage_config",
    "resolve_app",
    "strip_jsonc",
    "wrangler_app",
    "write_program_stub",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "._config": ["WranglerConfig", "WranglerEnv", "find_wrangler", "load_wrangler"],
        "._export": ["export_wrangler"],
        "._import": ["import_wrangler", "render_program", "render_stage_config"],
        "._jsonc": ["loads_jsonc", "strip_jsonc"],
        "._program": ["declarations", "wrangler_app", "write_program_stub"],
        "._resolve": ["resolve_app"],
    },
)

"""The local stand-in for the ``pyodide`` package (see :mod:`pyodide.ffi`, :mod:`pyodide.http`).

Cloudflare runs Python Workers on Pyodide; locally they run on CPython with this shim,
so ``from pyodide.ffi import to_js`` and ``from pyodide.http import pyfetch`` work.
"""

__version__ = "0.27.7"
"""The Pyodide release this shim imitates."""

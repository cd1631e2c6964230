"""infercost: the cheapest way to serve an LLM workload within its latency and quality targets.

The Python API (see README, "Python API"): `run`, `capacity`, `project`, `optimize`, `recommend`, `report`.
They are loaded on first use, so `import infercost` stays light (no engine, torch or Optuna import)."""

import sys
import types

__version__ = "0.1.0"

__all__ = ["run", "capacity", "project", "optimize", "recommend", "report", "__version__"]


class _CallablePackage(types.ModuleType):
    """`infercost.capacity` and `infercost.report` are also pipeline packages; once imported, Python binds the
    package to that name, so the package itself forwards a call to the API function of the same name."""

    def __call__(self, *args, **kwargs):
        from infercost import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


def callable_package(module_name: str) -> None:
    """Make the package `module_name` (infercost.capacity, infercost.report) callable as its API function."""
    sys.modules[module_name].__class__ = _CallablePackage


def __getattr__(name: str):
    if name in ("capacity", "report"):
        import importlib

        return importlib.import_module(f"infercost.{name}")
    if name in __all__:
        from infercost import api

        return getattr(api, name)
    raise AttributeError(f"module 'infercost' has no attribute {name!r}")

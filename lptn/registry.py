"""Name -> object registries that let YAML files pick classes and functions by ``type``."""

from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar

T = TypeVar("T")


class Registry:
    """A named table of classes or functions.

    Each registry kind (archs, datasets, losses, metrics, models) owns one instance and
    registers its members with the :meth:`register` decorator.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._members: Dict[str, Any] = {}

    def register(self, obj: Optional[T] = None, *, name: Optional[str] = None) -> Any:
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as a decorator."""

        def _add(member: T) -> T:
            key = name or member.__name__  # type: ignore[attr-defined]
            if key in self._members and self._members[key] is not member:
                raise KeyError(f"{self.kind} registry already has an entry named {key!r}")
            self._members[key] = member
            return member

        return _add if obj is None else _add(obj)

    def get(self, name: str, key_path: str = "type") -> Any:
        """Return the member called ``name``.

        Raises:
            KeyError: naming ``key_path`` (the YAML key that asked for it) and listing the
                registered names, closest first.
        """
        if name in self._members:
            return self._members[name]
        raise KeyError(self.unknown_message(name, key_path))

    def unknown_message(self, name: Any, key_path: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(str(name), names, n=len(names), cutoff=0.0)
        return (
            f"{key_path}: unknown {self.kind} type {name!r}. "
            f"Registered {self.kind} types, closest first: {', '.join(close) or '(none)'}"
        )

    def names(self) -> List[str]:
        return sorted(self._members)

    def __contains__(self, name: str) -> bool:
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def build_from_registry(
    registry: Registry, opt: Dict[str, Any], key_path: str, **extra: Any
) -> Any:
    """Instantiate ``registry[opt['type']](**rest_of_opt, **extra)``.

    ``key_path`` names the option block (e.g. ``network_g``) in error messages.
    """
    if not isinstance(opt, dict) or "type" not in opt:
        raise KeyError(f"{key_path}: needs a 'type' key, got {opt!r}")
    kwargs = {k: v for k, v in opt.items() if k != "type"}
    factory: Callable[..., Any] = registry.get(opt["type"], f"{key_path}.type")
    try:
        return factory(**kwargs, **extra)
    except TypeError as err:
        raise TypeError(f"{key_path} ({opt['type']}): {err}") from err


def import_modules_with_suffix(package_name: str, package_file: str, suffix: str) -> None:
    """Import every ``*{suffix}.py`` module beside ``package_file`` so they register."""
    import importlib
    from pathlib import Path

    for path in sorted(Path(package_file).parent.glob(f"*{suffix}.py")):
        importlib.import_module(f"{package_name}.{path.stem}")

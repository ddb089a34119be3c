from __future__ import annotations

import types

import selflearn


def test_public_api_is_exactly_all() -> None:
    for name in selflearn.__all__:  # lazily imported names resolve too
        assert getattr(selflearn, name) is not None, name
    public = {
        name
        for name, value in vars(selflearn).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(selflearn.__all__) - {"__version__"}
    assert callable(selflearn.simulate) and selflearn.SCHEMA_VERSION

"""The package's public names: changing them is a decision, made here on purpose."""

from __future__ import annotations

import inspect

import screener

PUBLIC = [
    "ConfigError", "LexiconError", "LexiconSet", "MatcherUnavailable", "Problem", "Screener", "ScreenerError",
    "Screening", "load_lexicons",
]


def test_the_public_names_are_exactly_these():
    assert sorted(screener.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(screener, name) is not None


def test_public_callables_are_typed():
    for name in PUBLIC:
        obj = getattr(screener, name)
        functions = [obj] if inspect.isfunction(obj) else [
            f for n, f in inspect.getmembers(obj, inspect.isfunction) if not n.startswith("_") or n == "__init__"]
        for function in functions:
            if function.__module__.startswith("screener"):
                hints = inspect.signature(function)
                missing = [p for p in hints.parameters.values()
                           if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
                assert not missing, f"{name}.{function.__name__}: untyped {missing}"


def test_every_error_a_user_can_cause_is_a_screener_error():
    from screener import errors

    for name, obj in inspect.getmembers(errors, inspect.isclass):
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__:
            assert issubclass(obj, screener.ScreenerError), name

"""One call run beside the caller: the cold build's parallel work.

Hyperscan's compile releases the GIL, so a matcher compiles beside the
loader's pinyin spellings (:meth:`screener.judge.Engine.build`), and a large
lexicon's databases compile beside each other
(:mod:`screener.matchers.hyperscan_backend`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable


class Background:
    """One call run in a daemon thread; :meth:`result` waits and returns it
    (or raises what it raised)."""

    def __init__(self, function: Callable[..., Any], name: str) -> None:
        self._function = function
        self._name = name
        self._thread: threading.Thread | None = None
        self.started = False
        self._outcome: tuple[bool, Any] = (False, None)

    def start(self, *args: Any) -> "Background":
        def run() -> None:
            try:
                self._outcome = (True, self._function(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to result()
                self._outcome = (False, exc)

        self.started = True
        thread = threading.Thread(target=run, name=self._name, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (a process at its limit): run here instead
            run()
            return self
        self._thread = thread
        return self

    def result(self) -> Any:
        assert self.started
        if self._thread is not None:
            self._thread.join()
        ok, value = self._outcome
        if not ok:
            raise value
        return value

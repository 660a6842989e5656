"""TEMPORARY shim; replaced by the records branch."""
from typing import Any
import orjson


def loads(raw: Any) -> Any:
    return orjson.loads(raw)


def dumps(obj: Any, *, newline: bool = False) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE if newline else 0)

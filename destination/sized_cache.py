"""A cache bounded by the bytes its entries hold, not by their count (issue 19).

A count bound lets a few large entries (a 7.5 MB destination Config, an event shape of 420,000
keys) hold hundreds of megabytes. Here each entry comes with its size, an estimate of the memory
it keeps alive given by the caller; an entry larger than `max_item_bytes` is not kept at all
(large inputs are rare and each costs more to keep than to redo), and the oldest entries go first
once the sizes add up past `max_bytes`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SizedCache(Generic[K, V]):
    __slots__ = ("_sizes", "_values", "bytes", "get", "max_bytes", "max_item_bytes")

    def __init__(self, max_bytes: int, max_item_bytes: int) -> None:
        assert 0 < max_item_bytes <= max_bytes
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes
        self.bytes = 0  # the sizes of the entries held, added up
        self._values: dict[K, V] = {}
        self._sizes: OrderedDict[K, int] = OrderedDict()  # oldest first
        # The value under a key, or None: the dict's own method, as lookups are hot paths.
        self.get: Callable[[K], V | None] = self._values.get

    def __contains__(self, key: K) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def put(self, key: K, value: V, size: int) -> bool:
        """Keep `value` under `key` unless it is too large; whether it was kept. First in, first
        out: a lookup does not reorder (it stays one dict lookup)."""
        if size > self.max_item_bytes:
            return False
        self.bytes -= self._sizes.pop(key, 0)
        while self._sizes and self.bytes + size > self.max_bytes:
            oldest, oldest_size = self._sizes.popitem(last=False)
            del self._values[oldest]
            self.bytes -= oldest_size
        self._values[key] = value
        self._sizes[key] = size
        self.bytes += size
        return True

    def clear(self) -> None:
        self._values.clear()
        self._sizes.clear()
        self.bytes = 0

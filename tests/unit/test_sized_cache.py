"""SizedCache: bounded by the sizes of its entries, not by their count."""

from __future__ import annotations

from destination.sized_cache import SizedCache


def test_an_entry_larger_than_the_item_bound_is_not_kept() -> None:
    cache: SizedCache[str, int] = SizedCache(max_bytes=100, max_item_bytes=40)
    assert cache.put("large", 1, 41) is False
    assert "large" not in cache and cache.get("large") is None and cache.bytes == 0


def test_the_oldest_entries_go_first_once_the_sizes_add_up_past_the_bound() -> None:
    cache: SizedCache[str, int] = SizedCache(max_bytes=100, max_item_bytes=40)
    for n in range(4):
        assert cache.put(f"k{n}", n, 30)
    assert [k for k in ("k0", "k1", "k2", "k3") if k in cache] == ["k1", "k2", "k3"]
    assert cache.bytes == 90 and cache.get("k3") == 3


def test_putting_a_key_again_replaces_its_size() -> None:
    cache: SizedCache[str, int] = SizedCache(max_bytes=100, max_item_bytes=40)
    cache.put("k", 1, 30)
    cache.put("k", 2, 10)
    assert cache.get("k") == 2 and cache.bytes == 10 and len(cache) == 1

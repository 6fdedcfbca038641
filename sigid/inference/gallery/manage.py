"""Gallery management without the model (no torch): what `sigid gallery info|list|remove|
convert` do, on any store (`store.open_store`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sigid.atomic import atomic_path, check_target
from sigid.data.preprocess import options_of
from sigid.inference.gallery.store import ReferenceStore, is_milvus, open_store


def open_existing(location: str | Path, *, write: bool = False) -> ReferenceStore:
    """The store at `location`, which must hold a gallery (one line if not); read-only unless
    `write` (an .npz gallery is read-only either way)."""
    location = str(location)
    if not is_milvus(location):
        path = Path(location)
        if not path.exists():
            raise ValueError(f"{location}: no such gallery file")
        if not write and not os.access(path, os.W_OK):
            return _recorded(open_store(location, read_only=True))
    return _recorded(open_store(location))


def _recorded(store: ReferenceStore) -> ReferenceStore:
    if store.metadata() is None:
        store.close()
        raise ValueError(f"{store.location}: no gallery recorded in this store yet")
    return store


def describe_store(store: ReferenceStore) -> dict[str, Any]:
    """A store's location, backend, model record and size on disk (files: the database and its
    write-ahead log), without its writers."""
    meta = store.metadata() or {}
    backend = type(store).__name__.removesuffix("Store").lower()
    found: dict[str, Any] = {"gallery": store.location, "backend": backend}
    found["read_only"] = store.read_only
    for key in ("checkpoint", "fingerprint", "dim", "score"):
        found[key] = meta.get(key)
    found["options"] = recorded_options(store.location, meta) if meta else []
    files = [Path(store.location + suffix) for suffix in ("", "-wal")]
    if not is_milvus(store.location) and files[0].is_file():
        found["bytes"] = sum(f.stat().st_size for f in files if f.is_file())
    return found


def recorded_options(location: str | Path, meta: dict[str, Any]) -> list[str]:
    """The normaliser options of the preprocessing a gallery's references were embedded with
    (a gallery keeps them)."""
    try:
        return list(options_of(meta["preprocessing"]))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{location}: damaged gallery file (its preprocessing: {err})") from err


def info(location: str | Path) -> dict[str, Any]:
    """`describe_store` with the number of writers and references."""
    store = open_existing(location)
    try:
        counts = store.counts()
        return {
            **describe_store(store),
            "writers": len(counts),
            "references": sum(counts.values()),
        }
    finally:
        store.close()


def writers(location: str | Path) -> dict[str, int]:
    """Writer -> number of references, in enrolment order."""
    store = open_existing(location)
    try:
        return store.counts()
    finally:
        store.close()


def remove(location: str | Path, writer: str) -> int:
    """Delete every reference of `writer` from the store itself; how many (one line if the
    writer is not enrolled)."""
    store = open_existing(location, write=True)
    try:
        removed = store.remove(writer)
    finally:
        store.close()
    if not removed:
        raise ValueError(f"writer {writer!r} is not enrolled in {location}; nothing removed")
    return removed


def copy_store(source: ReferenceStore, target: str | Path) -> int:
    """Write every writer of `source` (model record, references, sources, enrolment order) into
    a new store at `target`; how many writers. Refused where a gallery is."""
    meta = source.metadata()
    if meta is None:
        raise ValueError(f"{source.location}: no gallery recorded in this store yet")
    store = open_store(target)
    try:
        if store.read_only:
            raise ValueError(f"{target}: a store that cannot be written (an .npz is read-only)")
        if store.metadata() is not None:
            raise ValueError(f"{target}: holds a gallery already; convert into a new one")
        store.create(meta)
        counts = source.counts()
        items = ((w, *source.references(w)) for w in counts)
        add_many = getattr(store, "add_many", None)
        if add_many is not None:  # one transaction
            add_many(items)
        else:
            for writer, embeddings, sources in items:
                store.add(writer, embeddings, sources)
        return len(counts)
    finally:
        store.close()


def convert(old: str | Path, new: str | Path) -> dict[str, Any]:
    """A copy of the gallery at `old` (an .npz of sigid before the store, or any store) as a
    new store at `new`: a file is written whole or not at all (a temporary file, then
    renamed). Returns `info` of the new one."""
    source = open_existing(old)
    try:
        if is_milvus(str(new)):
            copy_store(source, new)
        else:
            target = check_target(Path(new))
            if target.exists():
                raise ValueError(f"{new}: exists already; convert into a new file")
            if str(new).endswith(".npz"):
                raise ValueError(
                    f"{new}: a store cannot be an .npz; name it {target.with_suffix('.sqlite')}"
                )
            with atomic_path(target) as temporary:
                copy_store(source, temporary)
    finally:
        source.close()
    return info(new)

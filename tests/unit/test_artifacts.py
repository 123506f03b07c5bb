"""Serializers and the artifact store: exact round trips, inline vs stored, clear errors."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from zonda.artifacts import store as store_module
from zonda.artifacts.serializers import JsonSerializer, resolve_serializer
from zonda.artifacts.store import ArtifactStore, serialize
from zonda.errors import ConfigError, NotFoundError, SerializationError
from zonda.worker.arguments import Inputs


def test_plain_data_is_json_and_other_values_are_pickled() -> None:
    assert serialize({"a": [1, 2.5, None, True]}, None, "t")[0] == "json"
    assert serialize((1, 2), None, "t")[0] == "pickle"
    assert serialize({1: "int key"}, None, "t")[0] == "pickle"


def test_an_unserializable_value_fails_with_a_useful_message() -> None:
    with pytest.raises(SerializationError, match=r"return value of task 'x' \(lock\).*serializer="):
        serialize(threading.Lock(), None, "task 'x'")


def test_json_refuses_values_it_would_change() -> None:
    with pytest.raises(TypeError):
        JsonSerializer().dumps({"t": (1, 2)})


def test_small_values_stay_inline_and_big_ones_go_to_the_store(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path), inline_max_bytes=64)
    small = store.save({"k": 1}, "d/r/t/try-1.out")
    big = store.save({"k": "x" * 500}, "d/r/t/try-1.out")
    assert small.data is not None and small.uri is None
    assert big.uri is not None and Path(big.uri).exists()
    assert store.load(small) == {"k": 1}
    assert store.load(big) == {"k": "x" * 500}


def test_an_artifact_that_is_not_there_says_where_the_store_must_be(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"), inline_max_bytes=8)
    ref = store.save(list(range(100)), "team-a/run/big.json")
    Path(ref.uri or "").unlink()
    with pytest.raises(NotFoundError, match="workers and the API must share ZONDA_ARTIFACT_URL"):
        ArtifactStore(str(tmp_path / "artifacts")).load(ref)


def test_fsspec_urls_work(tmp_path: Path) -> None:
    store = ArtifactStore("memory://zonda-tests", inline_max_bytes=0)
    ref = store.save([1, 2, 3], "a/b.out")
    assert ref.uri is not None and ref.uri.startswith("memory://")
    assert store.load(ref) == [1, 2, 3]


def test_serializer_by_dotted_path() -> None:
    assert resolve_serializer("zonda.artifacts.serializers:JsonSerializer").name == "json"
    with pytest.raises(ConfigError, match="not found"):
        resolve_serializer("nope.module:Thing")


def test_mapped_instances_decode_their_upstream_list_once_and_get_their_own_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(str(tmp_path), inline_max_bytes=16)
    ref = store.save([{"n": i} for i in range(100)], "up/out")
    decoded: list[bytes] = []
    real = store_module.resolve_serializer

    def counting(name: str) -> Any:
        serializer = real(name)
        original = serializer.loads

        class Counting:
            def loads(self, data: bytes) -> Any:
                decoded.append(data)
                return original(data)

        return Counting()

    monkeypatch.setattr(store_module, "resolve_serializer", counting)
    instances = [Inputs({"up": ref}, store) for _ in range(3)]
    assert [i.length("up") for i in instances] == [100, 100, 100]
    first = instances[0].element("up", 7)
    first["n"] = "changed by the task"
    assert instances[1].element("up", 7) == {"n": 7}
    assert instances[2].element("up", 99) == {"n": 99}
    assert len(decoded) == 1

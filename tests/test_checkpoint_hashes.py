"""Checkpoints with a known SHA-256 are verified on load; the sum is remembered in the cache folder by
the file's path, size and modification time, so an unchanged file is read only once."""

import hashlib
import json
import os

import pytest
import torch

from uncertsam_utils.model import CheckpointMismatchError, checkpoints, load_model
from uncertsam_utils.model.checkpoints import NANO_CONFIG, CheckpointInfo, cached_sha256, download_checkpoint


@pytest.fixture
def hashed(monkeypatch, tmp_path):
    """Counts the files ``sha256_of`` reads; the cache folder is a fresh tmp folder."""
    monkeypatch.setenv("UNCERTSAM_CACHE", str(tmp_path / "cache"))
    reads = []
    original = checkpoints.sha256_of
    monkeypatch.setattr(checkpoints, "sha256_of", lambda path, *a: reads.append(path.name) or original(path, *a))
    return reads


@pytest.fixture
def fake_official(monkeypatch, tmp_path, nano_random):
    """A registry entry that behaves as an official checkpoint (its sum recorded, family 2.1) but
    builds the small nano config, and its file in the checkpoint folder."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    path = folder / "fake_official.pt"
    torch.save({"model": nano_random.model.state_dict()}, path)
    info = CheckpointInfo(name="fake_official", family="2.1", size="nano", config=str(NANO_CONFIG),
                          filename=path.name, url="http://127.0.0.1:9/fake_official.pt",
                          sha256=hashlib.sha256(path.read_bytes()).hexdigest(), num_bytes=None, hash_source="test")
    monkeypatch.setitem(checkpoints.CHECKPOINTS, info.name, info)
    monkeypatch.setenv("UNCERTSAM_CHECKPOINTS", str(folder))
    return info, path


def _touch(path, seconds_later=10):
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds_later * 10**9))


def test_the_sum_is_read_once_while_size_and_modification_time_stay(tmp_path, hashed):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"abc" * 1000)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert cached_sha256(path) == expected and cached_sha256(path) == expected
    assert hashed == ["weights.pt"]
    _touch(path)  # same bytes, newer file: read again
    assert cached_sha256(path) == expected and len(hashed) == 2
    path.write_bytes(b"abd" * 1000)  # same size; the rewrite changes the modification time
    _touch(path, 20)
    assert cached_sha256(path) == hashlib.sha256(b"abd" * 1000).hexdigest() and len(hashed) == 3
    assert cached_sha256(path, refresh=True) and len(hashed) == 4
    memo = json.loads((tmp_path / "cache" / checkpoints.HASHES_FILE).read_text())
    assert list(memo) == [str(path.resolve())] and memo[str(path.resolve())]["size"] == 3000


def test_an_unreadable_memo_is_rebuilt_with_a_warning(tmp_path, hashed):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"abc")
    memo = tmp_path / "cache" / checkpoints.HASHES_FILE
    memo.parent.mkdir(parents=True)
    memo.write_text("{broken")
    with pytest.warns(UserWarning, match=f"{memo} is unreadable"):
        assert cached_sha256(path) == hashlib.sha256(b"abc").hexdigest()
    assert json.loads(memo.read_text())[str(path.resolve())]["sha256"] == hashlib.sha256(b"abc").hexdigest()


def test_an_official_checkpoint_is_verified_on_its_first_load_only(fake_official, hashed):
    info, path = fake_official
    loaded = load_model(info.name)
    assert loaded.checkpoint == path and loaded.sha256 == info.sha256 and hashed == [path.name]
    again = load_model(info.name)  # the remembered, verified sum: the file is not read again
    assert again.sha256 == info.sha256 and hashed == [path.name]
    load_model(info.name, verify_hash=True)  # `uncertsam checkpoints verify` reads it again
    assert hashed == [path.name, path.name]


def test_a_damaged_official_checkpoint_is_a_clear_error(fake_official, hashed, monkeypatch):
    info, path = fake_official
    load_model(info.name)
    with open(path, "ab") as handle:  # damaged after its first, verified load
        handle.write(b"\0")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(CheckpointMismatchError) as err:
        load_model(info.name)
    message = str(err.value)
    assert str(path) in message and info.sha256 in message and actual in message
    assert f"uncertsam checkpoints download {info.name}" in message
    wrong = CheckpointInfo(**{**info.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(checkpoints.CHECKPOINTS, info.name, wrong)
    with pytest.raises(CheckpointMismatchError, match=f"expects {'0' * 64}"):
        load_model(info.name, path)  # the same file name passed explicitly is verified too
    assert hashed.count(path.name) == 2  # the damaged file was read once; its sum is remembered


def test_a_verified_file_is_not_downloaded_or_read_again(fake_official, hashed):
    info, path = fake_official
    assert download_checkpoint(info.name, path.parent, timeout=0.1, progress=False) == path  # no network needed
    assert download_checkpoint(info.name, path.parent, timeout=0.1, progress=False) == path
    load_model(info.name)
    assert hashed == [path.name]

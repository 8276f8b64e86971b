"""Benchmark download: safe extraction of hostile tarballs, resumable HTTP against a local server,
and a fast, helpful failure when the Hub cannot be reached. Nothing here touches the network."""

import io
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import uncertsam_utils.data.archive as archive_module
import uncertsam_utils.data.download as download_module
from uncertsam_utils.data import DataError, SplitReader, write_split
from uncertsam_utils.data.archive import extract_split, member_path
from uncertsam_utils.data.download import DownloadError, archive_url, download_benchmark


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch, tmp_path):
    # Never pick up a real login or token from the machine running the tests.
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(download_module, "RETRY_PAUSE_S", 0.0)


def _split_tarball(tmp_path, rng, split="test", name="ISTD") -> bytes:
    """A real benchmark tarball: <split>/images/*.jpg + <split>/annotations/dataset.json."""
    src = tmp_path / "src"
    items = []
    for image_id in (1, 2):
        image = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
        mask = np.zeros((24, 32), bool)
        mask[4:12, 5:20] = True
        items.append((image_id, image, [mask]))
    write_split(src, name, split, items)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(src / name / split, arcname=split)
    return buffer.getvalue()


def _tar_with(members) -> bytes:
    """A .tar.gz from (TarInfo, payload bytes or None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, payload in members:
            if payload is not None:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _info(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


def _file(name):
    return (_info(name), b"payload")


# ------------------------------------------------------------------------------------------ safe extraction

HOSTILE = {
    "absolute path": [_file("/tmp/uncertsam-evil")],
    "dot-dot": [_file("test/../../uncertsam-evil")],
    "outside the split folder": [_file("other/file.txt")],
    "symlink to an absolute path": [(_info("test/link", tarfile.SYMTYPE, "/etc/passwd"), None)],
    "symlink escaping": [(_info("test/images/link", tarfile.SYMTYPE, "../../../outside"), None)],
    "symlink to the parent of the split": [(_info("test/link", tarfile.SYMTYPE, ".."), None)],
    "hard link escaping": [(_info("test/hard", tarfile.LNKTYPE, "../outside"), None)],
    "hard link outside the split": [_file("test/a"), (_info("test/hard", tarfile.LNKTYPE, "elsewhere/x"), None)],
    "character device": [(_info("test/dev", tarfile.CHRTYPE), None)],
    "block device": [(_info("test/blk", tarfile.BLKTYPE), None)],
    "FIFO": [(_info("test/fifo", tarfile.FIFOTYPE), None)],
    "windows drive": [_file("C:/evil")],
    "late bad member": [_file("test/images/ok.txt"), _file("test/../escape")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tarballs_are_refused_and_leave_nothing(tmp_path, case):
    archive = tmp_path / "dl" / "ISTD" / "test.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(_tar_with(HOSTILE[case]))
    with pytest.raises(DataError, match="unsafe archive") as info:
        extract_split(archive, archive.parent, "test")
    assert str(archive) in str(info.value)
    assert sorted(p.name for p in archive.parent.iterdir()) == ["test.tar.gz"]     # no split, no staging
    assert not (tmp_path / "uncertsam-evil").exists() and not (tmp_path / "dl" / "outside").exists()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_our_own_check_refuses_without_the_stdlib_filter(tmp_path, monkeypatch, case):
    # The first layer alone must hold, e.g. on Pythons without tarfile's data filter.
    monkeypatch.setattr(archive_module, "_HAS_DATA_FILTER", False)
    archive = tmp_path / "test.tar.gz"
    archive.write_bytes(_tar_with(HOSTILE[case]))
    with pytest.raises(DataError, match="unsafe archive"):
        extract_split(archive, tmp_path / "out", "test")
    assert not (tmp_path / "out" / "test").exists()


def test_member_check_accepts_internal_links_and_normal_members():
    assert str(member_path(_info("./test/images/1.jpg"), "test")) == "test/images/1.jpg"
    assert str(member_path(_info("test", tarfile.DIRTYPE), "test")) == "test"
    assert member_path(_info("test/images/l.jpg", tarfile.SYMTYPE, "../annotations/dataset.json"), "test")
    assert member_path(_info("test/b", tarfile.LNKTYPE, "test/a"), "test")
    with pytest.raises(DataError, match="outside"):
        member_path(_info("train/x"), "test")


def test_good_tarball_extracts_and_reads(tmp_path, rng):
    archive = tmp_path / "ISTD" / "test.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(_split_tarball(tmp_path, rng))
    target = extract_split(archive, archive.parent, "test")
    assert target == tmp_path / "ISTD" / "test"
    assert len(SplitReader(tmp_path, "ISTD", "test")) == 2
    with pytest.raises(DataError, match="already exists"):
        extract_split(archive, archive.parent, "test")


def test_corrupt_or_wrong_tarballs_are_errors(tmp_path, rng):
    archive = tmp_path / "test.tar.gz"
    archive.write_bytes(_split_tarball(tmp_path, rng)[:300])
    with pytest.raises(DataError, match="incomplete or corrupt"):
        extract_split(archive, tmp_path / "out", "test")
    archive.write_bytes(_split_tarball(tmp_path / "other", rng, split="val"))
    with pytest.raises(DataError, match="outside the top-level folder 'test/'"):
        extract_split(archive, tmp_path / "out", "test")


# ------------------------------------------------------------------------------------------ HTTP

class _Hub(BaseHTTPRequestHandler):
    """A minimal stand-in for the Hub's resolve endpoint, with Range support and failure modes."""

    files: dict = {}
    log: list = []
    status: int | None = None
    drop_first: bool = False
    ignore_range: bool = False
    redirect: bool = False

    def do_GET(self):
        type(self).log.append((self.path, self.headers.get("Range"), self.headers.get("Authorization")))
        if self.status:
            self.send_error(self.status)
            return
        if self.redirect and not self.path.startswith("/cdn"):
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/cdn{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = self.files.get(self.path.removeprefix("/cdn"))
        if data is None:
            self.send_error(404)
            return
        start = 0
        range_header = self.headers.get("Range")
        if range_header and not self.ignore_range:
            start = int(range_header.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).drop_first:
            type(self).drop_first = False
            self.wfile.write(body[: len(body) // 3])   # then hang up mid-transfer
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub():
    handler = type("Hub", (_Hub,), {"files": {}, "log": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.endpoint = f"http://127.0.0.1:{server.server_port}"
    yield handler
    server.shutdown()
    server.server_close()


def _serve(hub, tmp_path, rng, dataset="ISTD", split="test") -> bytes:
    data = _split_tarball(tmp_path / f"src-{dataset}-{split}", rng, split=split, name=dataset)
    hub.files[f"/datasets/JesseBrouw/UncertSAM/resolve/main/{dataset}/{split}.tar.gz"] = data
    return data


def test_download_extracts_verifies_and_is_idempotent(tmp_path, rng, hub):
    data = _serve(hub, tmp_path, rng)
    _serve(hub, tmp_path, rng, split="val")
    out = tmp_path / "bench"
    statuses = download_benchmark(out, ["ISTD"], ["val", "test"], token="secret", endpoint=hub.endpoint)
    assert [(s.split, s.action, s.images, s.masks) for s in statuses] == [("val", "downloaded", 2, 2),
                                                                           ("test", "downloaded", 2, 2)]
    assert (out / "ISTD" / "test.tar.gz").read_bytes() == data
    assert not list(out.rglob("*.part")) and not list((out / "ISTD").glob(".*"))
    assert all(auth == "Bearer secret" for _, _, auth in hub.log)
    assert len(SplitReader(out, "ISTD", "test")) == 2
    requests_before = len(hub.log)
    again = download_benchmark(out, ["ISTD"], ["val", "test"], endpoint=hub.endpoint)
    assert [s.action for s in again] == ["present", "present"] and len(hub.log) == requests_before


def test_interrupted_transfer_resumes_with_range(tmp_path, rng, hub):
    data = _serve(hub, tmp_path, rng)
    hub.drop_first = True
    out = tmp_path / "bench"
    download_benchmark(out, ["ISTD"], ["test"], endpoint=hub.endpoint)
    assert (out / "ISTD" / "test.tar.gz").read_bytes() == data
    ranges = [r for _, r, _ in hub.log]
    assert ranges[0] is None and ranges[1] == f"bytes={len(data) // 3}-"


def test_partial_file_from_an_earlier_run_is_resumed(tmp_path, rng, hub):
    data = _serve(hub, tmp_path, rng)
    part = tmp_path / "bench" / "ISTD" / "test.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    download_benchmark(tmp_path / "bench", ["ISTD"], ["test"], endpoint=hub.endpoint)
    assert hub.log[0][1] == "bytes=1000-"
    assert (tmp_path / "bench" / "ISTD" / "test.tar.gz").read_bytes() == data


def test_server_ignoring_range_restarts_cleanly(tmp_path, rng, hub):
    data = _serve(hub, tmp_path, rng)
    hub.ignore_range = True
    part = tmp_path / "bench" / "ISTD" / "test.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 500)                     # would corrupt the file if appended to
    download_benchmark(tmp_path / "bench", ["ISTD"], ["test"], endpoint=hub.endpoint)
    assert (tmp_path / "bench" / "ISTD" / "test.tar.gz").read_bytes() == data


def test_token_is_not_sent_to_another_host(tmp_path, rng, hub):
    _serve(hub, tmp_path, rng)
    hub.redirect = True                              # 127.0.0.1 redirects to localhost, like Hub -> CDN
    download_benchmark(tmp_path / "bench", ["ISTD"], ["test"], token="secret", endpoint=hub.endpoint)
    assert hub.log[0][2] == "Bearer secret"
    assert hub.log[1][0].startswith("/cdn") and hub.log[1][2] is None


def test_token_falls_back_to_the_environment(tmp_path, rng, hub, monkeypatch):
    _serve(hub, tmp_path, rng)
    monkeypatch.setenv("HF_TOKEN", "from-env")
    download_benchmark(tmp_path / "bench", ["ISTD"], ["test"], endpoint=hub.endpoint)
    assert hub.log[0][2] == "Bearer from-env"


@pytest.mark.parametrize("code, message", [(401, "gated"), (403, "accept its terms"), (404, "not found")])
def test_refusals_explain_what_to_do(tmp_path, hub, code, message):
    hub.status = code
    with pytest.raises(DownloadError, match=message) as info:
        download_benchmark(tmp_path / "bench", ["BIG"], ["val"], endpoint=hub.endpoint)
    assert "by hand" in str(info.value)
    assert len(hub.log) == 1                         # a refusal is not retried


def test_offline_fails_within_seconds_with_manual_instructions(tmp_path):
    with socket.socket() as probe:                   # a localhost port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_benchmark(tmp_path / "bench", endpoint=f"http://127.0.0.1:{port}", timeout=3)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "cannot reach 127.0.0.1" in message and "by hand" in message
    assert "huggingface.co/datasets/JesseBrouw/UncertSAM" in message
    assert "BIG/train.tar.gz" in message and str(tmp_path / "bench") in message


def test_archives_placed_by_hand_are_used_offline(tmp_path, rng):
    out = tmp_path / "bench"
    (out / "COIFT").mkdir(parents=True)
    (out / "COIFT" / "test.tar.gz").write_bytes(_split_tarball(tmp_path, rng, name="COIFT"))
    statuses = download_benchmark(out, "COIFT", "test", endpoint="http://127.0.0.1:9")   # names, not lists
    assert statuses[0].action == "extracted" and statuses[0].images == 2


def test_broken_archive_or_split_gives_clear_instructions(tmp_path, rng):
    out = tmp_path / "bench"
    (out / "BIG").mkdir(parents=True)
    (out / "BIG" / "val.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DownloadError, match=r"(?s)incomplete or corrupt.*Delete .*val\.tar\.gz"):
        download_benchmark(out, ["BIG"], ["val"], endpoint="http://127.0.0.1:9")
    (out / "BIG" / "val").mkdir()
    with pytest.raises(DownloadError, match="exists but does not verify"):
        download_benchmark(out, ["BIG"], ["val"], endpoint="http://127.0.0.1:9")


def test_unknown_names_are_refused(tmp_path):
    with pytest.raises(DownloadError, match="unknown"):
        download_benchmark(tmp_path, ["NotADataset"], endpoint="http://127.0.0.1:9")


def test_archive_url_follows_the_published_layout():
    assert archive_url("COD10K-v3", "val") == \
        "https://huggingface.co/datasets/JesseBrouw/UncertSAM/resolve/main/COD10K-v3/val.tar.gz"

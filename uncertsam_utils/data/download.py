"""Download the UncertSAM benchmark from the Hugging Face dataset repo ``JesseBrouw/UncertSAM``.

For every dataset ``D`` and split ``S`` requested, ``<D>/<S>.tar.gz`` is fetched to
``<out>/<D>/<S>.tar.gz``, extracted safely (:mod:`uncertsam_utils.data.archive`) to ``<out>/<D>/<S>/``
and verified with :class:`~uncertsam_utils.data.layout.SplitReader` (annotations parse, every image is
a JPEG whose size matches its masks). Running it again is cheap: verified splits are skipped, and an
archive already in place (for instance copied there by hand) is extracted without downloading.

Downloads go to ``<S>.tar.gz.part`` and resume with an HTTP Range request after an interruption,
within one run (up to :data:`MAX_ATTEMPTS` tries) and across runs. The token comes from the
argument, else ``HF_TOKEN``, else the huggingface_hub login; it is only sent to the Hub's own host.
Without network access the first connection fails after at most ``timeout`` seconds with a message
that explains how to get the archives by hand.
"""

from __future__ import annotations

import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from uncertsam_utils.data.archive import extract_split
from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.layout import DATASETS, SPLITS, SplitReader

REPO_ID = "JesseBrouw/UncertSAM"
DEFAULT_ENDPOINT = "https://huggingface.co"
DATASET_PAGE = f"{DEFAULT_ENDPOINT}/datasets/{REPO_ID}"
TIMEOUT_S = 10.0           # connect timeout, and the longest a stalled transfer may sit silent
MAX_ATTEMPTS = 5
RETRY_PAUSE_S = 2.0        # multiplied by the attempt number
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The benchmark could not be fetched; the message says why and what to do."""


@dataclass(frozen=True)
class SplitStatus:
    dataset: str
    split: str
    path: Path
    action: str            # "present" (already verified), "extracted" (archive was there), "downloaded"
    images: int
    masks: int
    report: str            # the reader's skip summary


def archive_url(dataset: str, split: str, endpoint: str = DEFAULT_ENDPOINT) -> str:
    path = urllib.parse.quote(f"{dataset}/{split}.tar.gz")
    return f"{endpoint.rstrip('/')}/datasets/{REPO_ID}/resolve/main/{path}"


def resolve_token(token: str | None = None) -> str | None:
    """The explicit token, else ``HF_TOKEN``, else the token saved by ``hf auth login`` (if any)."""
    if token:
        return token
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    try:
        from huggingface_hub import get_token
    except ImportError:
        return None
    return get_token()


def manual_instructions(out: Path, datasets: Sequence[str], splits: Sequence[str]) -> str:
    files = ", ".join(f"{d}/{s}.tar.gz" for d in datasets[:2] for s in splits)
    more = f" (and likewise for {', '.join(datasets[2:])})" if len(datasets) > 2 else ""
    return (f"To get the data by hand: on a machine with internet access, open {DATASET_PAGE} (log in and "
            f"accept the dataset's terms if asked), download {files}{more}, copy each file to "
            f"{out}/<dataset>/<split>.tar.gz, then run `uncertsam data download --out {out}` again: "
            f"archives already in place are extracted and verified without any network access.")


def download_benchmark(out, datasets: Sequence[str] = DATASETS, splits: Sequence[str] = SPLITS,
                       token: str | None = None, *, endpoint: str | None = None,
                       timeout: float = TIMEOUT_S, keep_archives: bool = True) -> list[SplitStatus]:
    """Fetch, extract and verify the requested splits under ``out``; returns one status per split."""
    out = Path(out)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    splits = [splits] if isinstance(splits, str) else list(splits)
    unknown = [d for d in datasets if d not in DATASETS] + [s for s in splits if s not in SPLITS]
    if unknown:
        raise DownloadError(f"unknown dataset/split name(s) {unknown}; datasets: {', '.join(DATASETS)}; "
                            f"splits: {', '.join(SPLITS)}")
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    token = resolve_token(token)
    statuses = []
    for dataset in datasets:
        for split in splits:
            statuses.append(_ensure_split(out, dataset, split, endpoint, token, timeout, keep_archives,
                                          lambda: manual_instructions(out, datasets, splits)))
    return statuses


def _ensure_split(out, dataset, split, endpoint, token, timeout, keep_archives, instructions) -> SplitStatus:
    target = out / dataset / split
    archive = out / dataset / f"{split}.tar.gz"
    if target.exists():
        try:
            return _verified(out, dataset, split, "present")
        except DataError as err:
            raise DownloadError(f"{target} exists but does not verify: {err}\nDelete {target} and run again "
                                f"(the archive {archive.name} is re-extracted if it is still there).") from err
    action = "extracted"
    if not archive.exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        fetch(archive_url(dataset, split, endpoint), archive, token=token, timeout=timeout,
              instructions=instructions)
        action = "downloaded"
    try:
        extract_split(archive, out / dataset, split)
        status = _verified(out, dataset, split, action)
    except DataError as err:
        raise DownloadError(f"{err}\nDelete {archive} (and {target} if present) and run again to fetch it anew.") from err
    if not keep_archives:
        archive.unlink()
    return status


def _verified(out, dataset, split, action) -> SplitStatus:
    reader = SplitReader(out, dataset, split)
    reader.check_images(decode=False)
    if len(reader) == 0:
        raise DataError(f"{reader.split_dir}: no usable images\n{reader.report.summary()}")
    return SplitStatus(dataset, split, reader.split_dir, action, len(reader), reader.report.kept_masks,
                       reader.report.summary())


# ------------------------------------------------------------------------------------------------ HTTP

def fetch(url: str, dest: Path, *, token: str | None = None, timeout: float = TIMEOUT_S,
          attempts: int = MAX_ATTEMPTS, instructions=lambda: "") -> None:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming with HTTP Range after interruptions."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    reached_server = False
    last_problem = ""
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            time.sleep(RETRY_PAUSE_S * (attempt - 1))
        start = part.stat().st_size if part.exists() else 0
        try:
            response = _open(url, token, start, timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416 and start:               # nothing left after our offset
                if _content_range_total(err.headers.get("Content-Range")) == start:
                    part.rename(dest)
                    return
                part.unlink()                           # the partial file does not belong to this archive
                last_problem = "server refused the resume offset"
                continue
            if err.code >= 500:
                reached_server, last_problem = True, f"HTTP {err.code}"
                continue
            raise DownloadError(_refusal_message(err.code, url, token) + "\n" + instructions()) from err
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            if not reached_server:                      # offline, DNS failure, refused: fail at once
                reason = getattr(err, "reason", err)
                raise DownloadError(f"cannot reach {urllib.parse.urlsplit(url).netloc} ({reason}).\n"
                                    + instructions()) from err
            last_problem = str(err)
            continue
        reached_server = True
        with response:
            resumed = response.status == 206
            total = (_content_range_total(response.headers.get("Content-Range")) if resumed
                     else _int_or_none(response.headers.get("Content-Length")))
            try:
                _copy(response, part, append=resumed, done=start if resumed else 0, total=total, name=dest.name)
            except (OSError, http.client.HTTPException) as err:  # timeouts, resets, short reads
                last_problem = f"transfer interrupted ({err!r})"
                continue
        size = part.stat().st_size
        if total is not None and size != total:
            last_problem = f"received {size} of {total} bytes"
            continue
        part.rename(dest)
        return
    raise DownloadError(f"giving up on {url} after {attempts} attempts ({last_problem}); run again to resume "
                        f"from {part}.\n" + instructions())


def _open(url: str, token: str | None, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "uncertsam-utils"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    opener = urllib.request.build_opener(_SameHostAuthRedirect(url, token))
    if token:
        # unredirected: urllib does not copy it to redirect targets; _SameHostAuthRedirect adds it back
        # only for the Hub's own host, never for the storage/CDN host the Hub redirects to.
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    return opener.open(request, timeout=timeout)


class _SameHostAuthRedirect(urllib.request.HTTPRedirectHandler):
    def __init__(self, url: str, token: str | None):
        self._host = urllib.parse.urlsplit(url).netloc
        self._token = token

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and self._token and urllib.parse.urlsplit(newurl).netloc == self._host:
            new.add_unredirected_header("Authorization", f"Bearer {self._token}")
        return new


def _copy(response, part: Path, *, append: bool, done: int, total: int | None, name: str) -> None:
    with open(part, "ab" if append else "wb") as fh, \
            tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=name, disable=None, leave=False) as bar:
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            fh.write(chunk)
            bar.update(len(chunk))


def _refusal_message(code: int, url: str, token: str | None) -> str:
    if code in (401, 403):
        sent = "A token was sent but" if token else "No Hugging Face token was found, and"
        return (f"the Hub refused access (HTTP {code}) to {url}. {sent} the dataset may be gated: accept its "
                f"terms at {DATASET_PAGE} while logged in, then pass a token (argument, HF_TOKEN, or "
                f"`hf auth login`).")
    if code == 404:
        return f"{url} was not found (HTTP 404); the file layout of {REPO_ID} may have changed."
    return f"the Hub answered HTTP {code} for {url}."


def _content_range_total(value: str | None) -> int | None:
    match = re.search(r"/(\d+)\s*$", value or "")
    return int(match.group(1)) if match else None


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None

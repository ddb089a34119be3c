"""``selflearn data fetch`` against a loopback HTTP server serving the shared data's bytes (the
source of truth for the pins): a full fetch, a resumed one, a checksum that differs, a folder
mirror, failures that name the file, and the loaders reading what was fetched."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selflearn.cli import app
from selflearn.core.errors import ConfigError, DataError
from selflearn.simulation.corpora import CORPORA, load_with_report
from selflearn.simulation.corpora.data_dir import fetch_data_dir, find_data_dir, user_data_dir
from selflearn.simulation.corpora.fetch import MANIFEST, RAW_GITHUB, fetch_corpora, files_of
from selflearn.simulation.corpora.pins import HA_INTENTS, SLURP

runner = CliRunner()


def _shared_data() -> Path:
    for candidate in (Path("../shared/data"), Path("/work/shared/data")):
        if (candidate / "slurp" / "devel.jsonl").is_file():
            return candidate.resolve()
    pytest.skip("needs the shared data (../shared/data or /work/shared/data): the pins' source of truth")


@pytest.fixture(scope="module")
def shared() -> Path:
    return _shared_data()


@pytest.fixture
def mirror(shared: Path, tmp_path: Path) -> Path:
    """A folder with the pinned files only, copied from the shared data (tests may damage it)."""
    root = tmp_path / "mirror"
    for file in MANIFEST:
        (root / file.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / file.path, root / file.path)
    return root


@dataclass
class Loopback:
    """A loopback HTTP server of a folder, with ``Range: bytes=N-`` support."""

    root: Path
    url: str = ""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Range header) of every request."""
    ignore_range: bool = False
    """Answer a Range request with the whole file (200), as some servers do."""
    cut_after: int | None = None
    """Drop the connection after this many bytes of the body (a lost connection)."""


def _handler(state: Loopback) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            rel = urllib.parse.unquote(self.path.lstrip("/"))
            wanted = self.headers.get("Range")
            state.requests.append((rel, wanted))
            path = state.root / rel
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start = 0
            if wanted and not state.ignore_range:
                start = int(wanted.removeprefix("bytes=").removesuffix("-"))
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if state.cut_after is not None:
                body = body[: state.cut_after]
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server(mirror: Path) -> Iterator[Loopback]:
    state = Loopback(mirror)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _installed(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_pins_are_the_shared_bytes(shared: Path) -> None:
    for file in MANIFEST:
        data = (shared / file.path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (file.size, file.sha256), file.path
    ha = files_of(["ha_tests"])
    assert len(ha) == 48 and {f.corpus for f in MANIFEST} == set(CORPORA)
    for file in MANIFEST:
        if file.upstream is not None:
            repo, commit = HA_INTENTS if file.corpus == "ha_tests" else SLURP
            assert file.upstream.url.startswith(f"{RAW_GITHUB}/{repo}/{commit}/"), file.upstream.url


def test_full_fetch_then_skip_and_the_loaders_read_it(server: Loopback, shared: Path, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    seen: list[tuple[str, int, int]] = []
    report = fetch_corpora(dest, source=server.url, progress=lambda *a: seen.append(a))
    assert sorted(report.fetched) == sorted(f.path for f in MANIFEST)
    assert not report.skipped and not report.resumed and not report.unavailable
    assert report.bytes_read == sum(f.size for f in MANIFEST)
    assert _installed(dest) == sorted(f.path for f in MANIFEST)  # no .part left
    assert seen[-1][1] == seen[-1][2] == report.bytes_read
    for name in CORPORA:
        phrasings, got = load_with_report(name, dest)
        _, want = load_with_report(name, shared)
        assert got.available and got.rows_read == want.rows_read > 0 and got.kept == want.kept, name
        assert len(phrasings) == want.kept
    server.requests.clear()
    again = fetch_corpora(dest, source=server.url)
    assert not again.fetched and len(again.skipped) == len(MANIFEST) and not server.requests
    (dest / "slurp" / "devel.jsonl").write_bytes(b"edited by hand\n")  # in place but not the pinned bytes
    replaced = fetch_corpora(dest, source=server.url)
    assert replaced.fetched == ("slurp/devel.jsonl",) and len(replaced.skipped) == len(MANIFEST) - 1
    assert hashlib.sha256((dest / "slurp" / "devel.jsonl").read_bytes()).hexdigest() == MANIFEST[-1].sha256


def test_resumes_a_part_file(server: Loopback, mirror: Path, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    data = (mirror / "slurp" / "devel.jsonl").read_bytes()
    part = dest / "slurp" / "devel.jsonl.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    report = fetch_corpora(dest, ["slurp"], source=server.url)
    assert report.fetched == report.resumed == ("slurp/devel.jsonl",)
    assert report.bytes_read == len(data) - 1000
    assert server.requests == [("slurp/devel.jsonl", "bytes=1000-")]
    assert (dest / "slurp" / "devel.jsonl").read_bytes() == data and not part.exists()


def test_a_lost_connection_keeps_the_part_and_the_next_run_resumes(
    server: Loopback, mirror: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "data"
    data = (mirror / "slurp" / "devel.jsonl").read_bytes()
    server.cut_after = 300_000
    with pytest.raises(DataError, match=r"could not fetch slurp/devel\.jsonl .*300,000 bytes kept in"):
        fetch_corpora(dest, ["slurp"], source=server.url)
    assert _installed(dest) == ["slurp/devel.jsonl.part"]
    server.cut_after = None
    report = fetch_corpora(dest, ["slurp"], source=server.url)
    assert report.resumed == ("slurp/devel.jsonl",) and report.bytes_read == len(data) - 300_000
    assert _installed(dest) == ["slurp/devel.jsonl"] and (dest / "slurp" / "devel.jsonl").read_bytes() == data


def test_a_server_without_range_and_a_damaged_part_start_over(
    server: Loopback, mirror: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "data"
    data = (mirror / "slurp" / "devel.jsonl").read_bytes()
    part = dest / "slurp" / "devel.jsonl.part"
    part.parent.mkdir(parents=True)
    server.ignore_range = True
    part.write_bytes(data[:500])
    assert fetch_corpora(dest, ["slurp"], source=server.url).fetched == ("slurp/devel.jsonl",)
    assert (dest / "slurp" / "devel.jsonl").read_bytes() == data
    server.ignore_range = False
    (dest / "slurp" / "devel.jsonl").unlink()
    part.write_bytes(b"x" * 500)  # not a prefix of the file: its check fails, then a clean start
    server.requests.clear()
    assert fetch_corpora(dest, ["slurp"], source=server.url).fetched == ("slurp/devel.jsonl",)
    assert server.requests == [("slurp/devel.jsonl", "bytes=500-"), ("slurp/devel.jsonl", None)]
    assert (dest / "slurp" / "devel.jsonl").read_bytes() == data and not part.exists()


def test_checksum_mismatch_names_the_file_and_installs_nothing(
    server: Loopback, mirror: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "data"
    damaged = mirror / "slurp" / "devel.jsonl"
    damaged.write_bytes(damaged.read_bytes().replace(b"olly", b"ollx", 1))
    with pytest.raises(DataError, match=r"slurp/devel\.jsonl .*failed its check: SHA-256"):
        fetch_corpora(dest, ["slurp"], source=server.url)
    assert _installed(dest) == []
    with pytest.raises(DataError, match=r"slurp/devel\.jsonl .*nothing was installed"):
        fetch_corpora(dest, ["slurp"], source=mirror)
    assert _installed(dest) == []


def test_from_dir_on_the_command_line(mirror: Path, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    res = runner.invoke(
        app, ["data", "fetch", "hwu64", "slurp", "--from", str(mirror), "--data-dir", str(dest)]
    )
    assert res.exit_code == 0, res.output
    assert _installed(dest) == ["hwu64/hwu64_cv_minus_slurp_test.jsonl", "slurp/devel.jsonl"]
    assert "fetched 2 files" in res.stdout
    res = runner.invoke(app, ["data", "fetch", "hwu64", "--from", str(mirror), "--data-dir", str(dest)])
    assert res.exit_code == 0, res.output
    assert "1 already in place" in res.stdout
    as_uri = fetch_corpora(tmp_path / "uri", ["slurp"], source=mirror.as_uri())  # file:// is a folder too
    assert as_uri.fetched == ("slurp/devel.jsonl",)


def test_failures_name_the_file(server: Loopback, mirror: Path, tmp_path: Path) -> None:
    (mirror / "slurp" / "devel.jsonl").unlink()
    with pytest.raises(DataError, match=r"could not fetch slurp/devel\.jsonl from http.*HTTP 404"):
        fetch_corpora(tmp_path / "a", ["slurp"], source=server.url)
    with pytest.raises(DataError, match=r"slurp/devel\.jsonl is not in the mirror"):
        fetch_corpora(tmp_path / "b", ["slurp"], source=mirror)
    closed = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there now
    with pytest.raises(DataError, match=r"could not fetch home_assistant_intents/tests/en/\S+ from http"):
        fetch_corpora(tmp_path / "c", ["ha_tests"], source=f"http://127.0.0.1:{port}", timeout=5)
    assert _installed(tmp_path / "c") == []  # an empty .part is not kept
    with pytest.raises(ConfigError, match="unknown corpus snips"):
        fetch_corpora(tmp_path / "d", ["snips"])
    with pytest.raises(ConfigError, match="neither a folder nor"):
        fetch_corpora(tmp_path / "e", ["slurp"], source=tmp_path / "missing")


def test_derived_file_needs_a_mirror(tmp_path: Path) -> None:
    """Upstream, hwu64's derived file has no source: reported, nothing downloaded (offline)."""
    report = fetch_corpora(tmp_path / "data", ["hwu64"])
    assert report.fetched == () and report.unavailable[0].startswith("hwu64/hwu64_cv_minus_slurp_test.jsonl:")
    res = runner.invoke(app, ["data", "fetch", "hwu64", "--data-dir", str(tmp_path / "data")])
    assert res.exit_code != 0 and "--from" in str(res.exception)


def test_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SELFLEARN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert fetch_data_dir() == user_data_dir() == tmp_path / "xdg" / "selflearn" / "data"
    assert fetch_data_dir(tmp_path) == tmp_path
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    user_data_dir().mkdir(parents=True)  # left empty by a fetch that failed: not a data folder
    assert find_data_dir() != user_data_dir()
    (user_data_dir() / "slurp").mkdir()
    assert find_data_dir() == user_data_dir()  # the loaders look where fetch stores
    monkeypatch.setenv("SELFLEARN_DATA_DIR", str(tmp_path / "env"))
    assert fetch_data_dir() == tmp_path / "env"

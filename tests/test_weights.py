"""The weights layer: manifest, download (resume, mirrors, checksums), cache checks, offline, CLI.

No network: a threaded http.server on 127.0.0.1 serves test files with Range support and
switchable faults; the manifest and CLIPGUIDE_HOME point into tmp_path.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clipguide import weights, weights_cli
from clipguide.errors import MissingWeightsError, UserError
from clipguide.registry import GENERATORS

EXPECTED_NAMES = {
    "vqgan_imagenet_f16_1024",
    "vqgan_imagenet_f16_16384",
    "vqgan_gumbel_f8_8192",
    "wikiart_1024",
    "wikiart_16384",
    "biggan-deep-128",
    "biggan-deep-256",
    "biggan-deep-512",
}


def _bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# A small file server with faults
# ---------------------------------------------------------------------------------------------


class FileServer:
    """Serves ``files[path]``; ``faults[path] = [fault, …]`` are used up one per request.

    Faults: "drop" (send half the body, then close), "404", "500", "ignore_range" (answer 200
    with the whole file), "wrong" (same length, other bytes), "html" (an error page as 200).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_HEAD(self) -> None:
                """What the Hugging Face hub answers about a file: its commit, etag and size."""
                path = self.path
                server.requests.append((path, "HEAD"))
                if path not in server.files:
                    self.send_error(404)
                    return
                data = server.files[path]
                self.send_response(200)
                self.send_header("X-Repo-Commit", "0" * 40)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()

            def do_GET(self) -> None:
                path = self.path
                server.requests.append((path, self.headers.get("Range")))
                queue = server.faults.get(path) or []
                fault = queue.pop(0) if queue else None
                if fault in ("404", "500") or path not in server.files:
                    self.send_error(int(fault or 404))
                    return
                data = server.files[path]
                if fault == "html":
                    page = b"<html>this link has expired</html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                if fault == "wrong":
                    data = bytes(b ^ 0xFF for b in data)
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and fault != "ignore_range":
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def add(self, path: str, data: bytes, *faults: str) -> str:
        self.files[path] = data
        self.faults[path] = list(faults)
        return self.url + path

    def hits(self, path: str) -> list[str | None]:
        """Range headers of the requests made for ``path``."""
        return [rng for p, rng in self.requests if p == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    monkeypatch.setenv("CLIPGUIDE_HOME", str(h))
    for var in ("HF_HUB_OFFLINE", "CLIPGUIDE_OFFLINE", "CLIPGUIDE_WEIGHTS_MANIFEST"):
        monkeypatch.delenv(var, raising=False)
    return h


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone.bin"


def _write_manifest(tmp_path: Path, monkeypatch, files: list[dict], name: str = "tiny") -> Path:
    """A one-entry vqgan manifest; ``files`` are dicts with role/filename/urls[/size/sha256]."""
    lines = [
        "version = 1",
        f"[weights.{name}]",
        'kind = "vqgan"',
        'description = "tiny test checkpoint"',
        'licence = "MIT"',
        'homepage = "https://example.invalid"',
    ]
    for f in files:
        lines.append(f"[[weights.{name}.files]]")
        for key, value in f.items():
            lines.append(f"{key} = {json.dumps(value)}")
    path = tmp_path / "manifest.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("CLIPGUIDE_WEIGHTS_MANIFEST", str(path))
    return path


@pytest.fixture
def tiny(tmp_path, monkeypatch, server, home):
    """A served checkpoint + config with a manifest that knows both hashes."""
    ckpt, cfg = _bytes(300_000, 1), b"model:\n  params: {}\n"
    ckpt_url = server.add("/tiny/model.ckpt", ckpt)
    cfg_url = server.add("/tiny/model.yaml", cfg)
    _write_manifest(tmp_path, monkeypatch, [
        {"role": "checkpoint", "filename": "model.ckpt", "urls": [ckpt_url, ckpt_url],
         "size": len(ckpt), "sha256": _sha(ckpt)},
        {"role": "config", "filename": "model.yaml", "urls": [cfg_url, cfg_url],
         "size": len(cfg), "sha256": _sha(cfg)},
    ])
    return {"ckpt": ckpt, "cfg": cfg, "dir": home / "weights" / "tiny"}


# ---------------------------------------------------------------------------------------------
# download_file
# ---------------------------------------------------------------------------------------------


def test_fresh_download_and_verify(tiny, server):
    paths = weights.fetch("tiny", progress=False)
    assert paths == {"checkpoint": tiny["dir"] / "model.ckpt", "config": tiny["dir"] / "model.yaml"}
    assert paths["checkpoint"].read_bytes() == tiny["ckpt"]
    assert not (tiny["dir"] / "model.ckpt.part").exists()
    assert all(ok for _, ok, _ in weights.verify("tiny"))
    # A second fetch finds both files good and downloads nothing.
    before = len(server.requests)
    weights.fetch("tiny", progress=False)
    assert len(server.requests) == before


def test_resume_after_dropped_connection(server, tmp_path):
    data = _bytes(200_000, 2)
    url = server.add("/big.bin", data, "drop")
    dest = tmp_path / "out" / "big.bin"
    weights.download_file([url], dest, sha256=_sha(data), size=len(data), progress=False)
    assert dest.read_bytes() == data
    ranges = server.hits("/big.bin")
    assert ranges == [None, f"bytes={len(data) // 2}-"]


def test_resume_of_a_part_file_left_by_an_earlier_run(server, tmp_path):
    data = _bytes(100_000, 3)
    url = server.add("/f.bin", data)
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(data[:12_345])
    weights.download_file([url], dest, sha256=_sha(data), size=len(data), progress=False)
    assert dest.read_bytes() == data
    assert server.hits("/f.bin") == ["bytes=12345-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = _bytes(50_000, 4)
    url = server.add("/f.bin", data, "ignore_range")
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(b"x" * 1000)  # a stale prefix that must not survive
    weights.download_file([url], dest, sha256=None, size=None, progress=False)
    assert dest.read_bytes() == data


def test_stale_part_file_is_discarded_and_refetched(server, tmp_path):
    data = _bytes(50_000, 5)
    url = server.add("/f.bin", data)
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(b"garbage!" * 100)  # resumes, fails sha, restarts
    weights.download_file([url], dest, sha256=_sha(data), size=len(data), progress=False)
    assert dest.read_bytes() == data
    assert server.hits("/f.bin") == ["bytes=800-", None]


def test_dead_mirrors_fall_through_to_a_good_one(server, tmp_path, caplog):
    data = _bytes(20_000, 6)
    good = server.add("/good.bin", data)
    urls = [
        _closed_port_url(),
        server.add("/err.bin", data, "500"),
        server.url + "/missing.bin",
        server.add("/page.bin", data, "html"),
        good,
    ]
    dest = tmp_path / "f.bin"
    weights.download_file(urls, dest, sha256=_sha(data), size=len(data), progress=False)
    assert dest.read_bytes() == data
    log = caplog.text
    assert "cannot connect" in log and "HTTP 500" in log and "HTTP 404" in log and "HTML" in log


def test_checksum_mismatch_is_refused_and_leaves_nothing(server, tmp_path):
    data = _bytes(20_000, 7)
    urls = [server.add("/a.bin", data, "wrong"), server.add("/b.bin", data, "wrong")]
    dest = tmp_path / "f.bin"
    with pytest.raises(UserError) as info:
        weights.download_file(urls, dest, sha256=_sha(data), size=len(data), progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert urls[0] in message and urls[1] in message and "sha256 mismatch" in message
    assert not dest.exists() and not dest.with_name("f.bin.part").exists()


def test_wrong_size_is_refused_before_downloading(server, tmp_path):
    data = _bytes(20_000, 8)
    url = server.add("/a.bin", data)
    with pytest.raises(MissingWeightsError, match="serves 20000 bytes, expected 999"):
        weights.download_file([url], tmp_path / "f.bin", sha256=None, size=999, progress=False)


def test_hf_urls_go_through_the_hub_client_and_its_cache(server, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    data = _bytes(10_000, 9)
    server.add("/owner/repo/resolve/abc123/sub/file.bin", data)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)  # conftest sets HF_HUB_OFFLINE=1 for every other test
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    dest = tmp_path / "file.bin"
    weights.download_file(["hf://owner/repo@abc123/sub/file.bin"], dest, sha256=_sha(data),
                          size=len(data), progress=False)
    assert dest.read_bytes() == data
    blobs = list((tmp_path / "hub").rglob("blobs/*"))  # the hub's own cache holds it, shared with other tools
    assert len(blobs) == 1 and blobs[0].read_bytes() == data
    assert ("/owner/repo/resolve/abc123/sub/file.bin", "HEAD") in server.requests
    server.add("/owner/repo/resolve/abc123/bad.bin", b"x" * 10)
    with pytest.raises(MissingWeightsError, match="bad.bin.*expected 99"):
        weights.download_file(["hf://owner/repo@abc123/bad.bin"], tmp_path / "bad.bin", size=99, progress=False)
    assert weights.display_url("hf://owner/repo/x.bin") == f"{server.url}/owner/repo/resolve/main/x.bin"


def test_s3_urls_use_an_anonymous_client_and_resume(tmp_path, monkeypatch):
    data = _bytes(30_000, 10)
    calls = []

    class FakeS3:
        def get_object(self, Bucket, Key, Range=None):
            calls.append((Bucket, Key, Range))
            if Range is None:  # the first answer breaks off half-way
                return {"Body": io.BytesIO(data[:10_000]), "ContentLength": len(data)}
            start = int(Range[len("bytes="):-1])
            return {"Body": io.BytesIO(data[start:]), "ContentLength": len(data) - start,
                    "ContentRange": f"bytes {start}-{len(data) - 1}/{len(data)}"}

    monkeypatch.setattr(weights.download, "_s3_client", lambda: FakeS3())
    dest = tmp_path / "w.bin"
    weights.download_file(["s3://bucket/dir/w.bin"], dest, sha256=_sha(data), size=len(data), progress=False)
    assert dest.read_bytes() == data
    assert calls == [("bucket", "dir/w.bin", None), ("bucket", "dir/w.bin", "bytes=10000-")]


# ---------------------------------------------------------------------------------------------
# fetch / verify: the cache
# ---------------------------------------------------------------------------------------------


def test_corrupt_cached_file_is_refetched(tiny, server):
    path = weights.fetch("tiny", progress=False)["checkpoint"]
    path.write_bytes(bytes(len(tiny["ckpt"])))  # same size, wrong bytes
    ok = dict((f, ok) for f, ok, _ in weights.verify("tiny"))
    assert ok == {"model.ckpt": False, "model.yaml": True}
    before = len(server.hits("/tiny/model.ckpt"))
    weights.fetch("tiny", progress=False)
    assert path.read_bytes() == tiny["ckpt"]
    assert len(server.hits("/tiny/model.ckpt")) == before + 1


@pytest.mark.parametrize("how", ["argument", "HF_HUB_OFFLINE", "CLIPGUIDE_OFFLINE"])
def test_offline_names_the_missing_file_and_its_path(tiny, server, monkeypatch, how):
    if how != "argument":
        monkeypatch.setenv(how, "1")
    with pytest.raises(MissingWeightsError) as info:
        weights.fetch("tiny", offline=how == "argument", progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "model.ckpt" in message and str(tiny["dir"] / "model.ckpt") in message
    assert server.url + "/tiny/model.ckpt" in message  # where to get it on another machine
    assert server.requests == []


def test_offline_with_the_files_in_place_works_and_reports_corruption(tiny, server):
    tiny["dir"].mkdir(parents=True)
    (tiny["dir"] / "model.ckpt").write_bytes(tiny["ckpt"])  # copied in by hand
    (tiny["dir"] / "model.yaml").write_bytes(tiny["cfg"])
    assert weights.fetch("tiny", offline=True)["config"] == tiny["dir"] / "model.yaml"
    (tiny["dir"] / "model.yaml").write_bytes(b"model: {}\n" + b" " * (len(tiny["cfg"]) - 10))
    with pytest.raises(MissingWeightsError, match="failed verification"):
        weights.fetch("tiny", offline=True)
    assert server.requests == []


def test_first_download_hash_is_recorded_and_tampering_detected(tmp_path, monkeypatch, server, home):
    data = _bytes(40_000, 11)
    url = server.add("/t/model.ckpt", data)
    cfg_url = server.add("/t/model.yaml", b"cfg")
    _write_manifest(tmp_path, monkeypatch, [
        {"role": "checkpoint", "filename": "model.ckpt", "urls": [url, url]},  # no size, no sha256
        {"role": "config", "filename": "model.yaml", "urls": [cfg_url, cfg_url]},
    ], name="tofu")
    path = weights.fetch("tofu", progress=False)["checkpoint"]
    record = json.loads(path.with_name("model.ckpt.sha256").read_text())
    assert record["sha256"] == _sha(data) and record["size"] == len(data) and record["source"] == url
    assert all(ok for _, ok, _ in weights.verify("tofu"))

    path.write_bytes(data[:-1] + b"\x00")  # tampered after the fact
    results = {f: (ok, msg) for f, ok, msg in weights.verify("tofu")}
    assert results["model.ckpt"][0] is False and "recorded at first download" in results["model.ckpt"][1]

    # Online, the tampered copy is replaced; a mirror now serving other bytes is refused.
    server.faults["/t/model.ckpt"] = ["wrong", "wrong"]
    with pytest.raises(UserError, match="sha256 mismatch") as info:
        weights.fetch("tofu", progress=False)
    assert str(path.with_name("model.ckpt.sha256")) in str(info.value)  # how to accept a new file
    assert not path.exists()
    weights.fetch("tofu", progress=False)
    assert path.read_bytes() == data


def test_unknown_name_suggests_close_ones(home):
    with pytest.raises(UserError, match="unknown weights 'wikiart_1025'.*did you mean"):
        weights.get_entry("wikiart_1025")


def test_bad_manifest_is_a_clear_error(tmp_path, monkeypatch, home):
    _write_manifest(tmp_path, monkeypatch, [
        {"role": "checkpoint", "filename": "../model.ckpt", "urls": ["https://x.invalid/a"]},
        {"role": "config", "filename": "model.yaml", "urls": ["https://x.invalid/b"]},
    ])
    with pytest.raises(UserError, match="plain file name"):
        weights.load_manifest()


# ---------------------------------------------------------------------------------------------
# The real manifest, data_dir, cache location
# ---------------------------------------------------------------------------------------------


def test_real_manifest_is_complete_and_well_formed(home):
    entries = weights.load_manifest()
    assert set(entries) == EXPECTED_NAMES | {"demo"}
    for entry in entries.values():
        assert entry.licence.strip() and entry.description.strip()
        assert entry.homepage.startswith("https://")
        if entry.shipped:  # the demo models: files beside the manifest, no download
            assert all(f.path.is_file() for f in entry.files)
            continue
        assert sorted(f.role for f in entry.files) == sorted(GENERATORS.info[entry.kind]["roles"] +
                                                             GENERATORS.info[entry.kind].get("optional_roles", ()))
        for f in entry.files:
            assert len(f.urls) >= 2, (entry.name, f.filename)
            assert len(set(f.urls)) == len(f.urls)
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
            assert weights.display_url(f.urls[0]).startswith("https://")
        expected_names = {"vqgan": {"model.ckpt", "model.yaml"}, "biggan": {"config.json", "pytorch_model.bin"}}
        assert {f.filename for f in entry.files} == expected_names[entry.kind]


def test_data_dir_finds_the_repository_folder():
    assert (weights.data_dir("weights") / "manifest.toml").is_file()
    with pytest.raises(UserError, match="reinstall"):
        weights.data_dir("no-such-folder")


def test_home_defaults_to_the_user_cache(monkeypatch):
    import platformdirs

    monkeypatch.delenv("CLIPGUIDE_HOME", raising=False)
    assert weights.home() == Path(platformdirs.user_cache_dir("clipguide"))
    monkeypatch.setenv("CLIPGUIDE_HOME", "/somewhere/else")
    assert weights.entry_dir("wikiart_1024") == Path("/somewhere/else/weights/wikiart_1024")


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_list(home, capsys):
    assert weights_cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in EXPECTED_NAMES:
        assert name in out
    assert "934.7 MiB" in out  # vqgan_imagenet_f16_16384, from the manifest's sizes


def test_cli_path(home, capsys):
    assert weights_cli.main(["path", "biggan-deep-256"]) == 0
    assert capsys.readouterr().out.strip() == str(home / "weights" / "biggan-deep-256")
    assert weights_cli.main(["path", "biggan-deep-256", "weights"]) == 0
    assert capsys.readouterr().out.strip() == str(home / "weights" / "biggan-deep-256" / "pytorch_model.bin")


def test_cli_errors_are_one_line_and_exit_2(home, capsys):
    assert weights_cli.main(["path", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clipguide: error: unknown weights 'nope'") and err.count("\n") == 1
    assert weights_cli.main(["download", "wikiart_1024", "--offline"]) == 2
    assert "put it at" in capsys.readouterr().err


def test_cli_download_and_verify(tiny, capsys):
    assert weights_cli.main(["download", "tiny", "--no-progress"]) == 0
    assert weights_cli.main(["verify"]) == 0
    assert "OK   tiny/model.ckpt" in capsys.readouterr().out
    (tiny["dir"] / "model.yaml").write_bytes(b"changed")
    assert weights_cli.main(["verify", "tiny"]) == 1

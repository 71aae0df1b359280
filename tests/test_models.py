"""Checkpoint registry, downloads (against a real local HTTP server), verification and safe loading."""

import dataclasses
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest
import torch

from samtrack_ops import models
from samtrack_ops.models import CheckpointError, MissingCheckpointError


class _RangeFileHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[path]`` with Range support; ``server.truncate_to`` cuts bodies short.

    With ``server.finish_together`` (a threading.Barrier) set, each answer holds back its last byte until
    that many answers are waiting (or the barrier times out), so concurrent downloads end together.
    """

    def do_GET(self):
        self.server.requests.append({"path": self.path, "range": self.headers.get("Range")})
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0]) if self.headers["Range"] else 0
        if start >= len(body):
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Type", self.server.content_type)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        sent = body[start:self.server.truncate_to]
        self.wfile.write(sent[:-1])
        self.wfile.flush()
        if self.server.finish_together is not None:
            try:
                self.server.finish_together.wait()
            except threading.BrokenBarrierError:
                pass
        self.wfile.write(sent[-1:])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1; tests put bytes in ``server.files`` and read ``server.requests``."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeFileHandler)
    httpd.files, httpd.requests = {}, []
    httpd.truncate_to, httpd.content_type, httpd.finish_together = None, "application/octet-stream", None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _checkpoint_bytes(tmp_path, seed=0):
    path = tmp_path / f"source_{seed}.pth"
    torch.save({"weight": torch.randn(64, 64, generator=torch.Generator().manual_seed(seed))}, path)
    return path.read_bytes()


def _cache_files(cache):
    """Names in the cache folder besides the (empty) lock files downloads leave."""
    return sorted(path.name for path in cache.iterdir() if not path.name.endswith(".lock"))


def _entry(server, body, name="file.pth", sha256="known", size="known"):
    """A registry-style entry whose URL points at ``server``; "known" fills the true size / hash."""
    server.files["/" + name] = body
    return models.CheckpointEntry(
        name="test_model", family="sam", architecture="vit_b", file_name=name,
        url=f"http://127.0.0.1:{server.server_port}/{name}", page="https://example.invalid/manual",
        size=len(body) if size == "known" else size,
        sha256=hashlib.sha256(body).hexdigest() if sha256 == "known" else sha256,
    )


def test_download_verifies_renames_and_reports_progress(server, tmp_path):
    body = _checkpoint_bytes(tmp_path)
    entry = _entry(server, body)
    calls = []
    path = models.download_checkpoint(entry, cache=tmp_path / "cache", progress=lambda *a: calls.append(a),
                                      chunk_size=1000)
    assert path == tmp_path / "cache" / "file.pth"
    assert path.read_bytes() == body
    assert not (tmp_path / "cache" / "file.pth.part").exists()
    assert calls[0] == (0, len(body)) and calls[-1] == (len(body), len(body))
    assert len(calls) > 3 and [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert torch.equal(models.load_checkpoint(path)["weight"], torch.load(path)["weight"])


def test_download_resumes_partial_file_with_range_request(server, tmp_path):
    body = _checkpoint_bytes(tmp_path)
    entry = _entry(server, body)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "file.pth.part").write_bytes(body[:1234])
    path = models.download_checkpoint(entry, cache=cache, progress=lambda *a: None)
    assert server.requests[-1]["range"] == "bytes=1234-"
    assert path.read_bytes() == body


def test_interrupted_download_keeps_part_for_resume_and_uses_nothing(server, tmp_path):
    body = _checkpoint_bytes(tmp_path)
    entry = _entry(server, body)
    cache = tmp_path / "cache"
    server.truncate_to = 2000
    with pytest.raises(CheckpointError, match="stopped at 2,000 of"):
        models.download_checkpoint(entry, cache=cache, progress=lambda *a: None)
    assert not (cache / "file.pth").exists()
    assert (cache / "file.pth.part").stat().st_size == 2000
    server.truncate_to = None
    assert models.download_checkpoint(entry, cache=cache, progress=lambda *a: None).read_bytes() == body
    assert server.requests[-1]["range"] == "bytes=2000-"


def test_truncated_file_with_unknown_length_fails_size_check(server, tmp_path):
    body = _checkpoint_bytes(tmp_path)
    entry = _entry(server, body)
    server.files["/file.pth"] = body[:-10]  # the server itself holds a short file
    with pytest.raises(CheckpointError, match="expected"):
        models.download_checkpoint(entry, cache=tmp_path / "cache", progress=lambda *a: None)
    assert _cache_files(tmp_path / "cache") == []


def test_bad_hash_leaves_nothing_in_cache(server, tmp_path):
    entry = _entry(server, _checkpoint_bytes(tmp_path), sha256="0" * 64)
    with pytest.raises(CheckpointError, match="SHA-256"):
        models.download_checkpoint(entry, cache=tmp_path / "cache", progress=lambda *a: None)
    assert _cache_files(tmp_path / "cache") == []


def test_html_answer_is_refused_with_manual_instructions(server, tmp_path):
    server.content_type = "text/html; charset=utf-8"
    entry = _entry(server, b"<html>quota exceeded</html>", sha256=None, size=None)
    with pytest.raises(CheckpointError, match="by hand from https://example.invalid/manual"):
        models.download_checkpoint(entry, cache=tmp_path / "cache", progress=lambda *a: None)
    assert not (tmp_path / "cache" / "file.pth").exists()


def test_unknown_hash_is_recorded_on_first_download_and_checked_later(server, tmp_path):
    body = _checkpoint_bytes(tmp_path)
    entry = _entry(server, body, sha256=None, size=None)
    cache = tmp_path / "cache"
    path = models.download_checkpoint(entry, cache=cache, progress=lambda *a: None)
    record = json.loads((cache / "verified.json").read_text())
    assert record["file.pth"]["sha256"] == hashlib.sha256(body).hexdigest()
    models.verify_file(entry, path)
    path.write_bytes(_checkpoint_bytes(tmp_path, seed=1))  # same size, different content
    with pytest.raises(CheckpointError, match="SHA-256"):
        models.verify_file(entry, path)


_DOWNLOAD_IN_SUBPROCESS = """
import json, sys
from samtrack_ops import models
fields = json.loads(sys.argv[1])
cache = fields.pop("cache")
entry = models.CheckpointEntry(**fields)
print("ready", flush=True)
sys.stdin.readline()
print(models.download_checkpoint(entry, cache=cache, progress=lambda *a: None))
"""


def _download_in_processes(entries, cache):
    """One process per entry downloads it into ``cache``, all started together once imported.

    Returns (exit code, stdout, stderr) per process.
    """
    processes = [
        subprocess.Popen([sys.executable, "-c", _DOWNLOAD_IN_SUBPROCESS,
                          json.dumps({**dataclasses.asdict(entry), "cache": str(cache)})],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for entry in entries
    ]
    for process in processes:
        assert process.stdout.readline() == "ready\n", process.stderr.read()
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    return [(process.wait(timeout=120), *process.communicate()) for process in processes]


def test_two_processes_downloading_one_checkpoint_both_get_the_verified_file(server, tmp_path):
    body = _checkpoint_bytes(tmp_path)
    entry = _entry(server, body)
    server.finish_together = threading.Barrier(2, timeout=6)  # with the lock only one request comes: waits 6 s
    cache = tmp_path / "cache"
    results = _download_in_processes([entry, entry], cache)
    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    assert {out.strip() for _, out, _ in results} == {str(cache / "file.pth")}
    assert (cache / "file.pth").read_bytes() == body
    assert not (cache / "file.pth.part").exists()
    recorded = json.loads((cache / "verified.json").read_text())
    assert recorded["file.pth"]["sha256"] == hashlib.sha256(body).hexdigest()


def test_two_processes_downloading_different_checkpoints_both_recorded(server, tmp_path):
    bodies = {name: _checkpoint_bytes(tmp_path, seed) for seed, name in enumerate(["one.pth", "two.pth"])}
    entries = [_entry(server, body, name=name, sha256=None, size=None) for name, body in bodies.items()]
    server.finish_together = threading.Barrier(2, timeout=30)
    cache = tmp_path / "cache"
    results = _download_in_processes(entries, cache)
    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    recorded = json.loads((cache / "verified.json").read_text())
    for name, body in bodies.items():
        assert (cache / name).read_bytes() == body
        assert recorded[name]["sha256"] == hashlib.sha256(body).hexdigest()
    assert _cache_files(cache) == ["one.pth", "two.pth", "verified.json"]


def test_cached_file_of_wrong_size_is_rejected(tmp_path):
    entry = models.get_entry("sam_vit_b")
    (tmp_path / entry.file_name).write_bytes(b"short")
    with pytest.raises(CheckpointError, match="375,042,383"):
        models.resolve_checkpoint("sam_vit_b", cache=tmp_path)


class Payload:
    """A custom class: pickling an instance makes a checkpoint that weights-only loading refuses."""

    def __init__(self, value):
        self.value = value


def test_unsafe_pickle_refused_unless_opted_in(tmp_path, monkeypatch):
    path = tmp_path / "unsafe.pth"
    torch.save({"weight": torch.ones(2), "extra": Payload(7)}, path)
    with pytest.raises(CheckpointError, match=r"Payload.*allow_unsafe_pickle=True.*SAMTRACK_ALLOW_UNSAFE_PICKLE"):
        models.load_checkpoint(path)
    assert models.load_checkpoint(path, allow_unsafe_pickle=True)["extra"].value == 7
    monkeypatch.setenv(models.UNSAFE_PICKLE_ENV, "1")
    assert models.load_checkpoint(path)["extra"].value == 7


class RunsCommand:
    """Pickles as a call of os.system: loading it unsafely would run a shell command."""

    def __reduce__(self):
        return os.system, ("echo unpickled-code-ran",)


def test_checkpoint_that_would_run_code_is_refused_as_code_not_as_corrupt(tmp_path, capfd):
    path = tmp_path / "runs_code.pth"
    torch.save({"weight": torch.ones(2), "hook": RunsCommand()}, path)
    with pytest.raises(CheckpointError) as raised:
        models.load_checkpoint(path)
    message = str(raised.value)
    assert "runs_code.pth holds pickled Python code or objects" in message
    assert "system" in message and "refused" in message
    assert "SAMTRACK_ALLOW_UNSAFE_PICKLE=1" in message and "allow_unsafe_pickle=True" in message
    assert "corrupt" not in message and "will not help" in message
    assert "unpickled-code-ran" not in capfd.readouterr().out


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_names_the_file(tmp_path, damage):
    body = _checkpoint_bytes(tmp_path)
    damaged = {"truncate": body[: len(body) // 2], "garbage": b"not a checkpoint" * 20, "empty": b""}[damage]
    path = tmp_path / "damaged.pth"
    path.write_bytes(damaged)
    with pytest.raises(CheckpointError, match=r"damaged\.pth is not a readable PyTorch checkpoint"):
        models.load_checkpoint(path)


def test_explicit_path_is_used_without_download_or_hash(tmp_path):
    path = tmp_path / "my_sam.pth"
    path.write_bytes(b"anything")
    assert models.resolve_checkpoint("sam_vit_b", path=path, cache=tmp_path / "cache") == path
    assert not (tmp_path / "cache").exists()
    with pytest.raises(MissingCheckpointError, match="sam_checkpoint / --sam-checkpoint points at"):
        models.resolve_checkpoint("sam_vit_b", path=tmp_path / "nope.pth")


def test_offline_message_says_which_file_from_where_to_where(tmp_path):
    entry = models.get_entry("r50_deaotl")
    unreachable = dataclasses.replace(entry, url="http://127.0.0.1:9/R50_DeAOTL_PRE_YTB_DAV.pth")
    with pytest.raises(MissingCheckpointError) as raised:
        models.resolve_checkpoint(unreachable, cache=tmp_path)
    message = str(raised.value)
    assert "download failed" in message
    assert "R50_DeAOTL_PRE_YTB_DAV.pth" in message
    assert "http://127.0.0.1:9/R50_DeAOTL_PRE_YTB_DAV.pth" in message
    assert "drive.google.com/file/d/1QoChMkTVxdYZ_eBlZhK2acq9KMQZccPJ" in message
    assert str(tmp_path / "R50_DeAOTL_PRE_YTB_DAV.pth") in message
    assert "tracker_checkpoint=PATH" in message and "--tracker-checkpoint" in message
    assert "SAMTRACK_CACHE_DIR" in message


def test_download_switched_off_gives_instructions(tmp_path):
    with pytest.raises(MissingCheckpointError, match=r"downloads are switched off[\s\S]*sam_vit_h_4b8939\.pth"):
        models.resolve_checkpoint("sam_vit_h", cache=tmp_path, download=False)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_DIR_ENV, str(tmp_path / "elsewhere"))
    assert models.cache_dir() == tmp_path / "elsewhere"
    assert models.cache_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_registry_names_and_listing(tmp_path):
    assert set(models.CHECKPOINTS) == {
        "sam_vit_b", "sam_vit_l", "sam_vit_h", "r50_deaotl", "deaott", "deaots", "deaotb", "deaotl",
        "swinb_deaotl", "groundingdino_swint_ogc", "groundingdino_swinb"}
    (tmp_path / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    rows = {row["name"]: row for row in models.list_checkpoints(cache=tmp_path)}
    assert rows["sam_vit_b"]["present"] and not rows["sam_vit_l"]["present"]
    assert rows["groundingdino_swint_ogc"]["size"] == 693_997_677
    assert models.get_entry("groundingdino_swinb").groundingdino_config == "GroundingDINO_SwinB_cfg.py"
    assert models.get_entry("deaotl").groundingdino_config is None
    with pytest.raises(ValueError, match="expected one of"):
        models.get_entry("sam_vit_x")


def test_check_state_dict_names_file_model_and_keys():
    expected = {"encoder.weight": (4, 3), "encoder.bias": (4,), "head.weight": (2, 4)}
    good = {key: torch.zeros(shape) for key, shape in expected.items()}
    models.check_state_dict(good, expected, "ok.pth", "R50-DeAOT-L")
    wrong = {"encoder.weight": torch.zeros(5, 3), "encoder.bias": torch.zeros(4), "other.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError) as raised:
        models.check_state_dict(wrong, expected, "wrong.pth", "R50-DeAOT-L")
    message = str(raised.value)
    assert "wrong.pth does not hold R50-DeAOT-L weights" in message
    assert "1 missing keys (e.g. head.weight)" in message
    assert "1 unexpected keys (e.g. other.weight)" in message
    assert "encoder.weight: file (5, 3) vs model (4, 3)" in message
    models.check_state_dict({**good, "aux.x": torch.zeros(1)}, expected, "ok.pth", "m", ignore_prefixes=("aux.",))
    with pytest.raises(CheckpointError, match="different kind of model"):
        models.check_state_dict({"x": torch.zeros(1)}, expected, "sam.pth", "R50-DeAOT-L")


def test_resolve_text_encoder(tmp_path, monkeypatch, tiny_bert_dir):
    monkeypatch.delenv(models.TEXT_ENCODER_ENV, raising=False)
    assert models.resolve_text_encoder() == "bert-base-uncased"
    assert models.resolve_text_encoder(tiny_bert_dir) == str(tiny_bert_dir)
    monkeypatch.setenv(models.TEXT_ENCODER_ENV, str(tiny_bert_dir))
    assert models.resolve_text_encoder() == str(tiny_bert_dir)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="lacks vocab.txt or tokenizer.json, model.safetensors or pytorch"):
        models.resolve_text_encoder(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        models.resolve_text_encoder(tmp_path / "missing")


def test_tiny_bert_dir_loads_offline(tiny_bert_dir):
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir, local_files_only=True)
    model = BertModel.from_pretrained(tiny_bert_dir, local_files_only=True)
    tokens = tokenizer("a black swan .", return_tensors="pt")
    assert tokenizer.convert_ids_to_tokens(tokens["input_ids"][0])[1:4] == ["a", "black", "swan"]
    assert model(**tokens).last_hidden_state.shape[-1] == model.config.hidden_size
    assert os.path.isfile(os.path.join(tiny_bert_dir, "vocab.txt"))

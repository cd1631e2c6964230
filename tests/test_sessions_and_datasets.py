"""Multi-turn sessions and dataset loaders. Sessions run against the stub server (a fake that answers at a known
pace, so the order and the think times can be checked to the millisecond); the history a real server sees growing is
checked against the real vLLM server in test_engines_real. Datasets are small files made here: a ShareGPT JSON file
and a Hugging Face dataset saved to disk (nothing downloads)."""

import json

import pytest

from infercost.errors import InputError
from infercost.loadgen.stub_server import stub_server
from infercost.metrics import summarize
from infercost.spec.workload import Workload
from infercost.workload.requests import build_requests

from conftest import WORKLOADS, replay


def sessions_workload(**prompts) -> Workload:
    return Workload.model_validate({
        "name": "s", "api": "chat",
        "prompts": {"source": "sessions", "think_time": {"dist": "fixed", "mean_s": 0.2}, **prompts},
        "traffic": {"arrival": "constant", "rate": 20, "num_requests": 3}})


def test_turns_follow_their_answers_after_the_think_time():
    w = sessions_workload(synthetic={"sessions": 3, "turns": {"mean": 3}, "input_tokens": {"mean": 8},
                                     "output_tokens": {"mean": 2}})
    with stub_server(ttft_ms=50, itl_ms=5, tokens=2) as url:
        _, records = replay(url, w)
    assert len(records) == 9 and all(r.ok for r in records)
    for session in range(3):
        turns = sorted((r for r in records if r.session == session), key=lambda r: r.turn)
        assert [r.turn for r in turns] == [0, 1, 2]
        for a, b in zip(turns, turns[1:]):
            assert b.scheduled_s == pytest.approx(a.end_s + 0.2, abs=0.02)  # answer, then the think time
            assert b.sent_s >= a.end_s + 0.19
    # sessions start open loop: the second begins 50 ms after the first, while the first is still talking
    starts = sorted(r.sent_s for r in records if r.turn == 0)
    assert starts[1] - starts[0] == pytest.approx(0.05, abs=0.02)
    s = summarize(records)
    assert set(s.by_turn) == {"0", "1", "2"} and s.by_turn["1"]["completed"] == 3
    assert s.sessions["sessions"] == 3 and s.sessions["completed_every_turn"] == 3 and s.sessions["mean_turns"] == 3
    assert s.sessions["session_s"]["mean"] > 2 * 0.2


def test_sessions_from_a_sharegpt_file():
    from infercost.spec import load_workload

    requests = build_requests(load_workload(WORKLOADS / "multi-turn-chat.yaml"))
    conversations = json.loads((WORKLOADS / "data" / "support_conversations.json").read_text())
    assert len(requests) == sum(len(c["conversations"]) // 2 for c in conversations)
    first = [r for r in requests if r.meta["session"] == 0]
    assert [r.messages[-1]["content"] for r in first] == [t["value"] for t in conversations[0]["conversations"]
                                                          if t["from"] == "human"]


def test_a_failed_turn_ends_its_session():
    w = sessions_workload(synthetic={"sessions": 3, "turns": {"mean": 3}, "input_tokens": {"mean": 8},
                                     "output_tokens": {"mean": 2}})
    with stub_server(tokens=2, fail_every=2) as url:  # the 2nd request of the run fails
        _, records = replay(url, w)
    failed = [r for r in records if not r.ok]
    assert failed and all(not any(x.session == r.session and x.turn > r.turn for x in records) for r in failed)


def test_sessions_need_chat_and_open_loop_arrivals():
    with pytest.raises(Exception, match="expected api: chat"):
        Workload.model_validate({"name": "s", "api": "completion", "prompts": {
            "source": "sessions", "synthetic": {"sessions": 1, "turns": {"mean": 2}, "input_tokens": {"mean": 4},
                                                "output_tokens": {"mean": 2}}},
            "traffic": {"rate": 1, "num_requests": 1}})
    with pytest.raises(Exception, match="give exactly one of 'path'"):
        Workload.model_validate({"name": "s", "prompts": {"source": "sessions"}, "traffic": {"rate": 1,
                                                                                             "num_requests": 1}})


def dataset_workload(prompts: dict) -> Workload:
    return Workload.model_validate({"name": "d", "prompts": {"source": "dataset", **prompts},
                                    "traffic": {"rate": 1, "num_requests": 4}})


def test_sharegpt_first_turns_sampled_and_sized_by_reference(tmp_path):
    rows = [{"id": f"c{i}", "conversations": [{"from": "human", "value": f"question number {i} " + "x" * (i * 40)},
                                              {"from": "gpt", "value": "y" * (8 * (i + 1))}]} for i in range(10)]
    rows.append({"id": "empty", "conversations": []})
    (tmp_path / "sg.json").write_text(json.dumps(rows))
    w = dataset_workload({"format": "sharegpt", "path": str(tmp_path / "sg.json"), "max_input_tokens": 60,
                          "sample": 3, "seed": 1, "output_tokens": "reference"})
    requests = build_requests(w)
    # rows 0-5 are at most 60 estimated tokens (4 characters each); 3 of them, drawn with seed 1, in file order
    assert len(requests) == 3 and all(int(r.id[1:]) <= 5 for r in requests)
    assert [r.id for r in requests] == sorted((r.id for r in requests), key=lambda x: int(x[1:]))
    assert all(r.max_tokens == 2 * (int(r.id[1:]) + 1) for r in requests)  # 8(i+1) characters / 4
    assert all(r.reference == "y" * (8 * (int(r.id[1:]) + 1)) for r in requests)
    assert [r.id for r in build_requests(w)] == [r.id for r in requests]  # the same seed, the same sample


def test_a_hugging_face_dataset_saved_to_disk(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"q": ["What is 2+2?", "", "Name a colour."], "a": ["4", "none", "Blue"],
                                "key": ["k0", "k1", "k2"]}).save_to_disk(str(tmp_path / "hf"))
    w = dataset_workload({"format": "hf", "path": str(tmp_path / "hf"),
                          "fields": {"prompt": "q", "reference": "a", "id": "key"}})
    requests = build_requests(w)
    assert [(r.id, r.messages[-1]["content"], r.reference) for r in requests] == [
        ("k0", "What is 2+2?", "4"), ("k2", "Name a colour.", "Blue")]  # the empty prompt is skipped


@pytest.mark.parametrize("prompts, expected", [
    ({"format": "hf", "path": "hf", "fields": {"prompt": "question"}}, "no field 'question' (the dataset has q"),
    ({"format": "hf", "path": "hf", "split": "test", "fields": {"prompt": "q"}}, "no split 'test'"),
    ({"format": "hf", "path": "no/such-dataset", "fields": {"prompt": "q"}}, "cannot load the dataset"),
    ({"format": "sharegpt", "path": "missing.json"}, "file not found"),
])
def test_dataset_problems_are_one_line(tmp_path, prompts, expected):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"q": ["hi"]})}).save_to_disk(str(tmp_path / "hf"))
    path = prompts["path"]
    if not path.startswith("no/"):
        prompts = {**prompts, "path": str(tmp_path / path)}
    with pytest.raises(InputError) as exc:
        build_requests(dataset_workload(prompts))
    assert expected in str(exc.value) and "\n" not in str(exc.value)


def test_the_shipped_dataset_example_loads():
    from infercost.spec import load_workload

    requests = build_requests(load_workload(WORKLOADS / "sharegpt-sample.yaml"))
    assert len(requests) == 8 and all(r.reference and r.max_tokens >= 1 for r in requests)


def test_load_phases_ramp_and_spike_with_figures_per_phase():
    from infercost.loadgen.schedule import phased_offsets

    w = Workload.model_validate({"name": "ph", "api": "completion",
                                 "prompts": {"source": "inline", "items": [f"p{i}" for i in range(50)]},
                                 "traffic": {"arrival": "poisson", "seed": 4, "phases": [
                                     {"name": "warm-up", "rate": 20, "duration_s": 0.5, "exclude": True},
                                     {"name": "ramp", "rate": [10, 60], "duration_s": 1.0},
                                     {"name": "spike", "rate": 150, "duration_s": 0.4}]}})
    offsets, phase = phased_offsets(w.traffic.phases, "poisson", seed=4)
    # expected arrivals: 10, (10 + 60) / 2 = 35 and 60; the ramp's second half gets more than its first
    counts = [int((phase == k).sum()) for k in range(3)]
    assert abs(counts[0] - 10) < 10 and abs(counts[1] - 35) < 18 and abs(counts[2] - 60) < 25, counts
    ramp = offsets[phase == 1]
    assert (ramp >= 1.0).sum() > (ramp < 1.0).sum()
    with stub_server(tokens=2) as url:
        _, records = replay(url, w)
    assert {r.phase for r in records} == {"warm-up", "ramp", "spike"}
    assert all(r.warmup == (r.phase == "warm-up") for r in records)
    s = summarize(records)
    assert list(s.by_phase) == ["warm-up", "ramp", "spike"] and s.by_phase["warm-up"]["excluded"]
    assert s.requests == counts[1] + counts[2]  # the warm-up phase is left out of the run's figures
    assert s.by_phase["spike"]["request_throughput_rps"] > s.by_phase["warm-up"]["request_throughput_rps"]


@pytest.mark.parametrize("traffic, expected", [
    ({"arrival": "poisson", "rate": 2, "phases": [{"name": "a", "rate": 1, "duration_s": 1}]},
     "'rate' does not apply with phases"),
    ({"arrival": "concurrency", "concurrency": 2, "phases": [{"name": "a", "rate": 1, "duration_s": 1}]},
     "phases are open-loop stretches"),
    ({"phases": [{"name": "a", "rate": 1, "duration_s": 1}, {"name": "a", "rate": 2, "duration_s": 1}]},
     "each phase needs its own name"),
    ({"phases": [{"name": "a", "rate": [0, 0], "duration_s": 1}]}, "expected a finite rate"),
])
def test_bad_phases_are_refused(traffic, expected):
    with pytest.raises(Exception) as exc:
        Workload.model_validate({"name": "ph", "prompts": {"source": "inline", "items": ["x"]}, "traffic": traffic})
    assert expected in str(exc.value)

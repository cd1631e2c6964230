"""The long run of the input-layer fuzz test (tests/test_input_hardening.py runs 60 examples in seconds): random
mutations of every shipped workload, deployment, study and prompt file, loaded as `infercost validate` loads them,
must end in a spec or one InputError line: no other exception, no hang (10 s per example), no more than
fuzz_inputs.MEMORY_LIMIT of Python memory. Examples are random each run (no derandomize), so repeated runs explore
more. FUZZ_EXAMPLES sets how many (default 20,000: about 5 minutes on 2 shared cores).

Run: make bench   (or: .venv/bin/python -m pytest benchmarks/test_input_fuzz.py -q -p no:cacheprovider)"""

import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import fuzz_inputs  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20000"))


@pytest.mark.timeout(3600)
def test_input_fuzz_long_run(benchmark, tmp_path):
    root = fuzz_inputs.copy_workloads(tmp_path)
    outcomes: Counter = Counter()

    @settings(max_examples=EXAMPLES, deadline=10_000, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=fuzz_inputs.mutated(fuzz_inputs.ALL_FILES))
    def fuzz(case):
        outcomes[fuzz_inputs.check(root, *case)] += 1

    benchmark.pedantic(fuzz, rounds=1, iterations=1)
    total = sum(outcomes.values())
    per_s = total / benchmark.stats.stats.mean
    benchmark.extra_info.update(examples=total, examples_per_s=round(per_s, 1), **outcomes)
    print(f"\ninput fuzz: {total} mutated files, {per_s:.0f}/s, outcomes {dict(outcomes)}")
    # Both outcomes occur: mutations that still load and ones refused with one line. Only refusals would mean the
    # mutations never reach validation; only successes would mean they never break anything.
    assert outcomes["ok"] and outcomes["input error"]

"""Workers started together on a new study all open it: the README says one study can be shared, and two workers
started within the same second used to crash on Optuna's table creation (IntegrityError on alembic_version,
"table already exists"). Real processes, released at the same instant, on a fresh SQLite file and, where
INFERCOST_TEST_POSTGRES is set, on a fresh PostgreSQL schema."""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

from infercost.search.study import storage_for

from test_search import STUDY

WORKERS = 4
ROUNDS = 4

# Imports first (seconds), then say so and wait for the common start time the test sends, so that storage
# creation, not start-up, is what the workers do at the same moment.
WORKER = """
import sys, time
from infercost.api import study_of
from infercost.search.study import open_study
spec = study_of(sys.argv[1])
print("ready", flush=True)
start = float(sys.stdin.readline())
time.sleep(max(0.0, start - time.time()))
study = open_study(spec, sys.argv[2])
print(study.study_name, len(study.get_trials()))
"""


def _race(tmp_path: Path, storage: str) -> None:
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump(json.loads(json.dumps(STUDY))))
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(spec), storage], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(WORKERS)]
    for w in workers:
        assert w.stdout.readline().strip() == "ready", w.communicate(timeout=60)[1][-2000:]
    start = time.time() + 0.3
    for w in workers:  # all of them first: communicate() would wait for each worker to end
        w.stdin.write(f"{start}\n")
        w.stdin.flush()
    results = [w.communicate(timeout=120) + (w.returncode,) for w in workers]
    for out, err, code in results:
        assert code == 0, err[-2000:]
        assert out.split() == ["t", "0"], out
    names = optuna.get_all_study_names(storage_for(storage))
    assert names == ["t"]
    study = optuna.load_study(study_name="t", storage=storage_for(storage))
    assert study.user_attrs["spec"]["name"] == "t"


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_workers_started_together_create_one_sqlite_study(tmp_path, round_):
    db = tmp_path / "new.db"
    assert not db.exists()
    _race(tmp_path, f"sqlite:///{db}")


@pytest.mark.skipif(not os.environ.get("INFERCOST_TEST_POSTGRES"), reason="set INFERCOST_TEST_POSTGRES to a "
                    "PostgreSQL URL (.ci/run starts a server and sets it)")
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_workers_started_together_create_one_postgresql_study(tmp_path, round_):
    import sqlalchemy

    url = os.environ["INFERCOST_TEST_POSTGRES"]
    schema = f"infercost_race_{uuid.uuid4().hex[:12]}"  # an empty schema: Optuna's tables are created anew
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in url else "?"
        _race(tmp_path, f"{url}{sep}options=-csearch_path%3D{schema}")
        with engine.connect() as conn:
            tables = conn.execute(sqlalchemy.text("SELECT count(*) FROM information_schema.tables WHERE "
                                                  "table_schema = :s"), {"s": schema}).scalar()
        assert tables > 0  # the study really lives in the fresh schema
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()

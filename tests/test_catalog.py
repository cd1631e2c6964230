"""The shipped price catalog and its validation: every rule gives a one-line error naming the file, row and field;
every shipped row has a source and a date; user rows override shipped ones."""

import json
import subprocess
import sys
from datetime import date

import pytest

from infercost.cost.catalog import ACCELERATORS, load_catalog
from infercost.errors import InputError

HEADER = ("provider,region,region_name,sku,accelerator,accelerator_count,accelerator_memory_gb,vcpus,ram_gb,"
          "on_demand_hourly,spot_hourly,reserved_1y_hourly,reserved_3y_hourly,currency,source,as_of,notes")
GOOD = "aws,us-east-1,US East,g6.xlarge,L4,1,24,4,16,0.80,0.32,0.50,0.35,USD,https://aws.amazon.com/ec2/pricing/,2026-09-01,"


def _write(tmp_path, *rows, header=HEADER, name="mine.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_every_shipped_row_is_sourced_dated_and_valid():
    catalog = load_catalog()
    assert len(catalog.offers) >= 40 and len(catalog.token_prices) >= 8
    for row in [*catalog.offers, *catalog.token_prices]:
        assert row.source.startswith("http"), row
        assert date(2024, 1, 1) <= row.as_of <= date.today(), row


def test_shipped_coverage():
    catalog = load_catalog()
    providers = {o.provider for o in catalog.offers}
    assert {"aws", "gcp", "azure"} <= providers and len(providers - {"aws", "gcp", "azure"}) >= 2
    for acc in ("H100-SXM", "H200", "A100-80GB", "L40S", "L4"):
        assert catalog.find(accelerator=acc), acc
    assert catalog.find(accelerator="A10G") or catalog.find(accelerator="A10")
    for cloud in ("aws", "gcp", "azure"):  # CPU instances that can price a run on this kind of machine
        assert catalog.find(provider=cloud, accelerator="none", min_vcpus=2, min_ram_gb=16), cloud
    assert {t.provider for t in catalog.token_prices} >= {"openai", "anthropic", "google"}


@pytest.mark.parametrize("row, field, words", [
    (GOOD.replace("0.80,0.32", "0.80,0.90"), "(row)", "spot_hourly (0.9) is above on_demand_hourly"),
    (GOOD.replace("0.50,0.35", "0.90,0.35"), "(row)", "reserved_1y_hourly (0.9) is above"),
    (GOOD.replace("0.50,0.35", "0.30,0.35"), "(row)", "reserved_3y_hourly is above reserved_1y_hourly"),
    (GOOD.replace("L4,1,", "L4,0,"), "(row)", "accelerator_count must be at least 1"),
    (GOOD.replace("L4,1,", "none,2,"), "(row)", "accelerator_count must be 0"),
    (GOOD.replace("L4,1,", "L4,-1,"), "accelerator_count", "greater than or equal to 0"),
    (GOOD.replace(",L4,", ",RTX4090,"), "accelerator", "unknown accelerator 'RTX4090'"),
    (GOOD.replace("0.80,0.32", "-0.80,0.32"), "on_demand_hourly", "greater than 0"),
    (GOOD.replace("0.80,0.32", "abc,0.32"), "on_demand_hourly", "valid number"),
    (GOOD.replace("2026-09-01", "2026-13-01"), "as_of", "date"),
    (GOOD.replace("2026-09-01", "2999-01-01"), "as_of", "in the future"),
    (GOOD.replace("https://aws.amazon.com/ec2/pricing/", ""), "source", "at least 1 character"),
    (GOOD.replace("USD", "dollars"), "currency", "pattern"),
])
def test_each_validation_rule_names_file_row_and_field(tmp_path, row, field, words):
    path = _write(tmp_path, row)
    with pytest.raises(InputError) as err:
        load_catalog([path])
    text = str(err.value)
    assert text.startswith(f"{path}: {field}: row 2: "), text
    assert words in text and "\n" not in text


def test_structural_errors(tmp_path):
    with pytest.raises(InputError, match="missing columns: on_demand_hourly"):
        load_catalog([_write(tmp_path, header=HEADER.replace("on_demand_hourly", "price"))])
    with pytest.raises(InputError, match="duplicate row for aws / us-east-1 / g6.xlarge"):
        load_catalog([_write(tmp_path, GOOD, GOOD)])
    with pytest.raises(InputError, match="catalog file not found"):
        load_catalog([tmp_path / "nope.csv"])
    with pytest.raises(InputError, match="row 3: more cells than header"):
        load_catalog([_write(tmp_path, GOOD, GOOD + ",extra")])


def test_token_price_rules(tmp_path):
    header = "provider,model,input_per_1m,cached_input_per_1m,output_per_1m,currency,source,as_of,notes"
    path = _write(tmp_path, "acme,m1,1.0,2.0,4.0,USD,https://acme.example/pricing,2026-01-01,", header=header)
    with pytest.raises(InputError, match="cached_input_per_1m is above input_per_1m"):
        load_catalog([path], builtin=False)


def test_user_rows_override_and_extend_the_shipped_catalog(tmp_path):
    shipped = load_catalog()
    base = next(o for o in shipped.offers if o.provider == "aws" and o.accelerator == "L4")
    negotiated = (f"aws,{base.region},,{base.sku},L4,{base.accelerator_count},,,,0.10,,,,USD,"
                  f"contract ACME-2026 (negotiated),2026-10-01,30% EDP discount")
    private = "acme-private,dc1,,rack-7,L40S,4,48,64,512,3.10,,,,USD,internal chargeback 2026,2026-10-01,"
    catalog = load_catalog([_write(tmp_path, negotiated, private)])
    assert len(catalog.offers) == len(shipped.offers) + 1
    mine = catalog.find(provider="aws", region=base.region, sku=base.sku)
    assert len(mine) == 1 and mine[0].on_demand_hourly == 0.10 and mine[0].source.startswith("contract")
    assert catalog.find(provider="acme-private")[0].accelerator_count == 4


def test_catalog_cli(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "infercost", *a], capture_output=True, text=True)  # noqa
    out = run("catalog", "list", "--accelerator", "H100-SXM", "--provider", "aws", "--json")
    assert out.returncode == 0 and "p5.48xlarge" in {o["sku"] for o in json.loads(out.stdout)["offers"]}
    out = run("catalog", "list", "--provider", "gcp")
    assert out.returncode == 0 and "price catalog: offers" in out.stdout
    out = run("catalog", "validate")
    assert out.returncode == 0 and out.stdout.startswith("ok: ")
    bad = _write(tmp_path, GOOD.replace("0.80,0.32", "0.80,0.90"))
    out = run("catalog", "validate", str(bad))
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "spot_hourly" in out.stderr and "row 2" in out.stderr
    out = run("catalog", "show", "--provider", "openai", "--sku", "gpt-4o-mini")
    assert out.returncode == 0 and '"output_per_1m"' in out.stdout
    assert set(ACCELERATORS) >= {"H100-SXM", "none"}

"""Load generation: arrival schedules, open/closed-loop replay, per-request records."""

from infercost.loadgen.records import RequestRecord
from infercost.loadgen.runner import LoadGenerator
from infercost.loadgen.schedule import arrival_offsets

__all__ = ["LoadGenerator", "RequestRecord", "arrival_offsets"]

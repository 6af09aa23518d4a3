from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from factories import down, facts

from mldoctor.facts import Facts
from mldoctor.model import Status
from mldoctor.serde import SchemaError, from_data, to_data


def test_facts_round_trip_through_json():
    original = facts(docker=down("timeout"))
    data = json.loads(json.dumps(to_data(original)))
    assert from_data(Facts, data) == original


def test_unknown_keys_from_a_newer_writer_are_ignored():
    data = to_data(facts())
    data["host"]["cpu"]["frequency_mhz"] = 3000
    data["gpu_rack"] = {"slot": 4}
    assert from_data(Facts, data) == facts()


@dataclass
class Sample:
    count: int
    ratio: float = 0.0
    status: Status = Status.PASS
    tags: list[str] = field(default_factory=list)
    maybe: int | None = None


def test_types_are_checked_with_a_path():
    with pytest.raises(SchemaError, match=r"\$\.count: expected int, got str"):
        from_data(Sample, {"count": "three"})
    with pytest.raises(SchemaError, match=r"\$\.tags\[1\]: expected str"):
        from_data(Sample, {"count": 1, "tags": ["a", 2]})
    with pytest.raises(SchemaError, match="not a valid Status"):
        from_data(Sample, {"count": 1, "status": "MAYBE"})
    with pytest.raises(SchemaError, match="expected int, got bool"):
        from_data(Sample, {"count": True})


def test_ints_widen_to_float_and_enums_load():
    assert from_data(Sample, {"count": 1, "ratio": 2, "status": "WARN", "maybe": None}) == Sample(1, 2.0, Status.WARN)


def test_missing_required_field_is_a_schema_error():
    with pytest.raises(SchemaError, match="count"):
        from_data(Sample, {})


def test_policy_round_trips_with_bands_and_pairs():
    from mldoctor.policy import Band, Policy

    policy = Policy(require_gpus=8, matmul=Band(0.95, 0.8), expect_tflops=(("bf16", 700.0), ("fp32", 50.0)))
    assert from_data(Policy, json.loads(json.dumps(to_data(policy)))) == policy
    with pytest.raises(SchemaError, match="expected 2 items"):
        from_data(Policy, {"expect_tflops": [["bf16"]]})

"""benchmarks/whispercpp_builds.py: the native / wheel speed-up per stage and its table."""

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def builds():
    return load_benchmark("whispercpp_builds")


def test_speed_ups_are_wheel_time_over_native_time_and_native_rtfx_over_wheel_rtfx(builds):
    native = {"rtfx": 20.0, "encoder_ms": 100.0, "first_token_ms": 120.0, "decoder_ms_per_token": None}
    wheel = {"rtfx": 10.0, "encoder_ms": 300.0, "first_token_ms": 360.0, "decoder_ms_per_token": 4.0}
    speedup = builds.speedups(native, wheel)
    assert speedup == {"rtfx": 2.0, "encoder_ms": 3.0, "first_token_ms": 3.0, "decoder_ms_per_token": None}
    cell = {"dataset": "d", "model": "tiny.en", "precision": "q8_0", "speedup": speedup}
    cell |= {"native": native | {"system_info": "AVX512 = 1"}, "wheel": wheel | {"system_info": "AVX2 = 1"}}
    table = builds._table([cell])
    assert "| d | tiny.en | q8_0 | speed-up | 2 | 3 | 3 |  |" in table and "- native: `AVX512 = 1`" in table

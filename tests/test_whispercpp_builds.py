"""benchmarks/whispercpp_builds.py and option_variants.py: speed-ups per stage and their tables."""

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


def test_option_variants_compare_each_value_with_the_first():
    variants = load_benchmark("option_variants")
    eager = {"rtfx": 10.0, "encoder_ms": 300.0, "first_token_ms": 330.0, "decoder_ms_per_token": 8.0}
    compiled = {"rtfx": 12.0, "encoder_ms": 200.0, "first_token_ms": 220.0, "decoder_ms_per_token": 10.0}
    speedup = variants.speedups(eager, compiled)
    assert speedup == {"rtfx": 1.2, "encoder_ms": 1.5, "first_token_ms": 1.5, "decoder_ms_per_token": 0.8}
    cell = {"dataset": "d", "model": "base", "precision": "int8", "speedup": {"true": speedup}}
    cell["variants"] = {
        "false": eager | {"load_s": 4.0, "runtime": {}},
        "true": compiled | {"load_s": 30.0, "runtime": {"compile_s": 25.5}},
    }
    table = variants._table([cell], "compile")
    assert "| d | base | int8 | true | 12 | 200 | 220 | 10 | 30.0 | 25.5 |" in table
    assert "| d | base | int8 | speed-up true | 1.2 | 1.5 | 1.5 | 0.8 |  |  |" in table

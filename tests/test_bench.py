"""The benchmark's machinery (its numbers are printed by ``gankit bench``, never asserted)."""

import pytest

from gankit import bench


@pytest.fixture(scope="module")
def pool():
    with bench.plain_process() as p:
        yield p


def test_plain_worker_has_default_allocator(pool):
    bench.check_plain(pool)  # raises if the plain loop would get gankit's allocator


def test_time_runners_interleaves_and_summarises():
    calls = []

    def runner(name):
        def run(n):
            calls.append((name, n))
            return 0.01 * (2 if name == "slow" else 1)
        return run

    res = bench.time_runners({"slow": runner("slow"), "fast": runner("fast")}, 10, 3, 2, 1)
    assert calls == [("slow", 1), ("fast", 1)] + [("slow", 3), ("fast", 3)] * 2
    assert res["slow"]["images_per_s_median"] == pytest.approx(500)
    assert res["fast"]["ms_step_min"] == pytest.approx(10)


def test_bench_training_rows(pool):
    lines = []
    rows = bench.bench_training(["dcgan"], [8], 1, 1, 0, False, lines.append, pool)
    (row,) = rows
    assert row["batch"] == 8
    ips = {k: row[f"{k}_images_per_s_median"] for k in (bench.PLAIN, bench.PLAIN_MALLOC, bench.FAST)}
    # the speedups are gankit's throughput over the plain loop's, not the other way round
    assert row["speedup"] == pytest.approx(ips[bench.FAST] / ips[bench.PLAIN], rel=1e-9)
    assert row["speedup_same_malloc"] == pytest.approx(ips[bench.FAST] / ips[bench.PLAIN_MALLOC],
                                                       rel=1e-9)
    assert f"speedup {row['speedup']:.2f}x" in lines[0]

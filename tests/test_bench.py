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
    assert f"speedup {row['speedup']:.2f}x" in lines[-1] and "tuner:" in lines[0]


def test_keras_anchor_trains_d_and_g_like_the_reference():
    """Under Keras 3 the tutorial's one-time ``d.trainable = False`` would freeze D in its own
    step too; the anchor must time a loop in which D and G both learn."""
    pytest.importorskip("tensorflow")
    import numpy as np

    from gankit.bench import keras

    d, g, gan = keras.build()
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (64, 32, 32, 3)).astype("float32")
    d0, g0 = [w.numpy().copy() for w in d.weights], [w.numpy().copy() for w in g.weights]
    keras.iteration(d, g, gan, real, rng)
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(d0, d.weights, strict=True))
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(g0, g.weights, strict=True))
    d1 = [w.numpy().copy() for w in d.weights]
    d.trainable = False
    gan.train_on_batch(rng.normal(size=(8, 100)).astype("float32"), np.ones((8, 1), "float32"))
    assert all(np.allclose(a, b.numpy()) for a, b in zip(d1, d.weights, strict=True))


def test_op_table_accounts_for_the_step(monkeypatch):
    """Self times add up to the step: kind shares sum to 1, ops are sorted, and the op names
    of a conv GAN step land in the right kinds."""
    from gankit.bench import ops
    from gankit.config import resolve

    from .conftest import TINY

    assert ops.kind_of("aten::convolution_backward") == "conv backward"
    assert ops.kind_of("aten::mkldnn_convolution") == "conv forward"
    assert ops.kind_of("aten::native_batch_norm") == "batch norm"
    assert ops.kind_of("aten::_fused_adam_") == "optimizer"
    assert ops.kind_of("aten::copy_") == "layout / copies"
    cfg = resolve("sndcgan", [*TINY, "perf.precision=fp32", "perf.channels_last=false",
                              "perf.threads=1"])
    t = ops.op_table(cfg, steps=2, top=5)
    assert abs(sum(t["kinds"].values()) - 1.0) < 1e-9 and t["ms_per_step"] > 0
    shares = [o["share"] for o in t["ops"]]
    assert shares == sorted(shares, reverse=True) and len(shares) == 5
    assert t["kinds"].get("conv forward", 0) > 0 and t["kinds"].get("conv backward", 0) > 0
    assert t["kinds"].get("spectral norm", 0) > 0 and t["kinds"].get("optimizer", 0) > 0
    assert "ms per step" in ops.format_table(t)

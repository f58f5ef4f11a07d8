"""`gankit runs`: finished, interrupted and running runs told apart; numbers from the files."""

import json
import os

import pytest

from gankit.cli import main
from gankit.training.loop import TrainingStopped, train

from .test_resume import after_step, interrupt  # noqa: F401 - fixture


def test_runs_table_and_json(tmp_path, tiny_cfg, images, capsys, after_step):  # noqa: F811
    root = tmp_path / "runs"
    cfg = tiny_cfg("dcgan", "train.epochs=2")
    train(cfg, root / "done", images, progress=False)
    after_step[5] = interrupt
    with pytest.raises(TrainingStopped):
        train(cfg, root / "nested" / "stopped", images, progress=False)
    train(tiny_cfg("sagan", "train.epochs=1"), root / "live", images, progress=False)
    (root / "live" / "running.pid").write_text(f"{os.getpid()}\n")  # as if still training
    main(["runs", str(root), "--json"])
    rows = {os.path.basename(r["run"]): r for r in json.loads(capsys.readouterr().out)}
    assert {k: r["status"] for k, r in rows.items()} == \
        {"done": "finished", "stopped": "interrupted", "live": "running"}
    assert rows["done"]["epochs_done"] == 2 and rows["done"]["step"] == 32
    assert rows["done"]["images_seen"] == 32 * 8  # 8 real images per step (batch 16, half)
    assert rows["stopped"]["step"] == 5 and rows["done"]["preset"] == "dcgan"
    assert rows["done"]["best_fid"] is None and rows["done"]["wall_seconds"] > 0
    main(["runs", str(root)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["run", "preset", "dataset"] and len(out) == 4


def test_runs_on_a_missing_folder_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["runs", str(tmp_path / "nope")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "is not a folder" in err[0]


def test_seed_folders_are_grouped_with_hand_computed_spread():
    import math

    from gankit.reports.runs import group_seeds

    rows = [{"run": f"sweep/runs/a/seed-{s}", "best_fid": f, "status": "finished"}
            for s, f in enumerate([40.0, 44.0, 45.0])]
    rows.append({"run": "sweep/runs/b/seed-0", "best_fid": None, "status": "interrupted"})
    rows.append({"run": "elsewhere/plain", "best_fid": 30.0, "status": "finished"})
    groups = {g["group"]: g for g in group_seeds(rows)}
    assert set(groups) == {"sweep/runs/a", "sweep/runs/b"}
    a = groups["sweep/runs/a"]["best_fid"]
    sd = math.sqrt(((40 - 43) ** 2 + (44 - 43) ** 2 + (45 - 43) ** 2) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
    assert a["mean"] == 43.0 and a["std"] == pytest.approx(sd)
    assert a["ci95"] == pytest.approx([43 - half, 43 + half])
    assert groups["sweep/runs/a"]["seeds"] == [0, 1, 2] and groups["sweep/runs/b"]["best_fid"] is None

import json
import os

from core.results.metrics import LogTail, ScalarsReader, eval_outputs


def rec(i, loss):
    return json.dumps({"lr": 0.1, "loss": loss, "iter": i, "step": i})


def write(path, text, mode="a"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode) as f:
        f.write(text)


def test_reads_only_complete_lines_and_only_new_bytes(tmp_path):
    f = tmp_path / "20260101_000000" / "vis_data" / "scalars.json"
    write(f, rec(1, 5.0) + "\n" + rec(2, 4.0))  # second record has no newline yet
    r = ScalarsReader(tmp_path)
    assert r.poll() == 1
    assert r.series("loss") == ([1], [5.0])
    write(f, "\n" + rec(3, 3.0) + "\n")
    assert r.poll() == 2
    assert r.series("loss") == ([1, 2, 3], [5.0, 4.0, 3.0])
    assert r.poll() == 0


def test_resumed_directories_merge_without_gaps_or_duplicates(tmp_path):
    a = tmp_path / "20260101_000000" / "vis_data" / "scalars.json"
    b = tmp_path / "20260101_010000" / "vis_data" / "scalars.json"
    write(a, "".join(rec(i, 10 - i) + "\n" for i in range(1, 8)))  # stopped after 7
    write(b, "".join(rec(i, 0.5) + "\n" for i in range(6, 11)))  # resumed from iter 5's checkpoint
    r = ScalarsReader(tmp_path)
    r.poll()
    xs, ys = r.series("loss")
    assert xs == list(range(1, 11))
    assert ys[5:] == [0.5] * 5  # the resumed run wins where they overlap


def test_truncated_or_replaced_file_is_read_again(tmp_path):
    f = tmp_path / "20260101_000000" / "vis_data" / "scalars.json"
    write(f, rec(1, 1.0) + "\n" + rec(2, 2.0) + "\n")
    r = ScalarsReader(tmp_path)
    r.poll()
    write(f, rec(1, 9.0) + "\n", mode="w")  # truncated and rewritten
    r.poll()
    assert r.series("loss") == ([1], [9.0])
    tmp = f.with_suffix(".new")
    write(tmp, rec(1, 7.0) + "\n" + rec(2, 8.0) + "\n" + rec(3, 6.0) + "\n", mode="w")
    os.replace(tmp, f)  # replaced (new inode), larger
    r.poll()
    assert r.series("loss") == ([1, 2, 3], [7.0, 8.0, 6.0])


def test_log_tail_is_incremental_and_bounded(tmp_path):
    log = tmp_path / "job.log"
    write(log, "".join(f"line {i}\n" for i in range(1000)))
    t = LogTail(log, max_lines=10)
    assert t.poll() == [f"line {i}" for i in range(990, 1000)]
    write(log, "partial")
    assert t.poll()[-1] == "line 999"
    write(log, " done\n")
    assert t.poll()[-1] == "partial done"


def test_log_tail_first_read_of_a_huge_file_reads_only_its_end(tmp_path):
    log = tmp_path / "job.log"
    write(log, "x" * 5_000_000 + "\nlast line\n")
    t = LogTail(log, max_lines=5, first_read_bytes=1024)
    assert t.poll() == ["last line"]


def test_eval_outputs_are_keyed_by_checkpoint_iteration(tmp_path):
    d = tmp_path / "20260101_000000" / "vis_data"
    write(d / "eval_outputs_iter_9.txt", "Eval output 1:\nQ1 A1\n\n\nEval output 2:\nQ2\nA2 line2\n\n\n")
    assert eval_outputs(tmp_path) == {10: ["Q1 A1", "Q2\nA2 line2"]}


def scalars_file(root, stamp):
    return root / stamp / "vis_data" / "scalars.json"


def test_resume_from_an_earlier_checkpoint_drops_the_abandoned_stretch(tmp_path):
    a = scalars_file(tmp_path, "20260101_000000")
    b = scalars_file(tmp_path, "20260101_010000")
    write(a, "".join(rec(i, 100 + i) + "\n" for i in range(1, 61)))  # trained to 60, checkpoints at 20, 40, 60
    r = ScalarsReader(tmp_path)
    r.poll()
    assert r.series("loss")[0] == list(range(1, 61))
    write(b, "".join(rec(i, 200 + i) + "\n" for i in range(21, 26)))  # resumed from iter_20
    r.poll()
    xs, ys = r.series("loss")
    assert xs == list(range(1, 26)), "nothing of the old 26..60 stays on the curve"
    assert ys[:20] == [100 + i for i in range(1, 21)] and ys[20:] == [200 + i for i in range(21, 26)]
    assert r.resumes() == [21]
    fresh = ScalarsReader(tmp_path)  # a page opened later reads the same curve
    fresh.poll()
    assert fresh.series("loss") == (xs, ys)


def test_stop_then_resume_from_the_stop_checkpoint_is_continuous(tmp_path):
    a = scalars_file(tmp_path, "20260101_000000")
    b = scalars_file(tmp_path, "20260101_010000")
    write(a, "".join(rec(i, 1.0) + "\n" for i in range(1, 32)))  # stopped after 31, iter_31.pth saved
    write(b, "".join(rec(i, 2.0) + "\n" for i in range(32, 41)))
    r = ScalarsReader(tmp_path)
    r.poll()
    assert r.series("loss")[0] == list(range(1, 41))
    assert r.last_iter == 40 and r.resumes() == [32]


def test_series_grows_incrementally_and_matches_a_full_read(tmp_path):
    import random

    f = scalars_file(tmp_path, "20260101_000000")
    f.parent.mkdir(parents=True)
    text = "".join(json.dumps({"iter": i, "loss": 1 / i, "lr": 1e-3, "time": 0.1}) + "\n" for i in range(1, 400))
    rng = random.Random(0)
    r = ScalarsReader(tmp_path)
    pos = 0
    while pos < len(text):  # the file grows in random pieces, cutting lines anywhere
        step = rng.randint(1, 120)
        write(f, text[pos:pos + step])
        pos += step
        r.poll()
        xs, ys = r.series("loss")
        assert xs == list(range(1, len(xs) + 1)) and ys == [1 / i for i in xs]
    assert r.series("loss")[0] == list(range(1, 400))
    assert r.keys() == ["loss", "lr", "time"]


def test_a_file_rewritten_in_place_to_a_larger_size_is_noticed(tmp_path):
    f = scalars_file(tmp_path, "20260101_000000")
    write(f, rec(1, 1.0) + "\n")
    r = ScalarsReader(tmp_path)
    r.poll()
    with open(f, "r+") as fh:  # same inode, longer, different content from byte 0
        fh.write(rec(1, 5.0) + "\n" + rec(2, 6.0) + "\n")
    r.poll()
    assert r.series("loss") == ([1, 2], [5.0, 6.0])


def test_bad_lines_are_skipped(tmp_path):
    f = scalars_file(tmp_path, "20260101_000000")
    write(f, "not json\n[1, 2]\n" + json.dumps({"loss": 1.0}) + "\n" + rec(3, 3.0) + "\n")
    r = ScalarsReader(tmp_path)
    assert r.poll() == 1 and r.series("loss") == ([3], [3.0])


def test_last_record_reads_the_newest_complete_line(tmp_path):
    from core.results.metrics import last_record

    assert last_record(tmp_path) is None
    write(scalars_file(tmp_path, "20260101_000000"), rec(1, 1.0) + "\n")
    write(scalars_file(tmp_path, "20260101_010000"), rec(5, 0.5) + "\n" + rec(6, 0.4))  # 6 is unfinished
    assert last_record(tmp_path)["iter"] == 5


def test_log_tail_shows_the_last_state_of_carriage_return_lines(tmp_path):
    log = tmp_path / "job.log"
    write(log, "Map: 10%\rMap: 50%\rMap: 100%\nnext\r\n")
    assert LogTail(log).poll() == ["Map: 100%", "next"]


def test_log_tail_after_truncation_starts_over(tmp_path):
    log = tmp_path / "job.log"
    write(log, "a\nb\n")
    t = LogTail(log)
    assert t.poll() == ["a", "b"]
    write(log, "c\n", mode="w")
    assert t.poll() == ["c"]


def test_scalars_csv_holds_every_point_of_every_start(tmp_path):
    from core.results.metrics import scalars_csv

    write(tmp_path / "20260101_000000" / "vis_data" / "scalars.json",
          "".join(json.dumps({"iter": i, "loss": 1.0 / i, "lr": 0.1}) + "\n" for i in range(1, 2001)))
    write(tmp_path / "20260101_010000" / "vis_data" / "scalars.json", json.dumps({"iter": 2001, "loss": 9.0}) + "\n")
    rows = scalars_csv(tmp_path).splitlines()
    assert rows[0] == "iter,loss,lr"
    assert len(rows) == 1 + 2001
    assert rows[1] == "1,1.0,0.1" and rows[-1] == "2001,9.0,"

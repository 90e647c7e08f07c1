import json
import os

from core.metrics import LogTail, ScalarsReader, eval_outputs


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

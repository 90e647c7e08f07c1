"""core.data.datasets over a corpus of good and bad files (tests/data/datasets/): every format, warning, error."""
import json
import os
from pathlib import Path

import pytest

from core.data import datasets
from core.data.datasets import convert, preview_records, preview_turns, validate

CORPUS = Path(__file__).parent / "data" / "datasets"


def codes(issues):
    return {(i.code, i.line, i.field) for i in issues}


@pytest.mark.parametrize("name, fmt, container, records", [
    ("good_openai.jsonl", "openai", "jsonl", 3),
    ("good_openai_array.json", "openai", "json", 2),
    ("good_xtuner.jsonl", "xtuner", "jsonl", 2),
    ("good_alpaca.json", "alpaca", "json", 2),
    ("good_alpaca_zh.jsonl", "alpaca", "jsonl", 1),
    ("good_sharegpt.json", "sharegpt", "json", 2),
    ("good_oasst1.jsonl", "oasst1", "jsonl", 1),
])
def test_every_format_is_detected_and_clean(name, fmt, container, records):
    r = validate(CORPUS / name)
    assert r.ok, [str(e) for e in r.errors]
    assert (r.format, r.container, r.records, r.trainable) == (fmt, container, records, records)
    assert r.warnings == []


def test_turns_follow_xtuners_map_functions():
    """What XTuner trains on: the map function's conversation."""
    turns = dict(preview_turns(CORPUS / "good_xtuner.jsonl", 1))[1]
    assert turns == [("Be brief.", "Who are you?", "Ada's assistant.", True), ("", "And?", "That's all.", True)]
    _, alpaca = preview_turns(CORPUS / "good_alpaca.json", 2)[1]
    assert alpaca == [("", "Add the numbers.\n1 and 2", "3", True)]
    _, oasst = preview_turns(CORPUS / "good_oasst1.jsonl", 1)[0]
    assert oasst == [("", "Can you explain LoRA?", "A low-rank adapter.", True), ("", "Thanks", "You're welcome.", True)]
    _, share = preview_turns(CORPUS / "good_sharegpt.json", 1)[0]
    assert share == [("Be kind.", "Hi", "Hello", True)]


def test_every_warning_names_line_and_field():
    r = validate(CORPUS / "warn_openai.jsonl")
    assert r.ok  # warnings do not block
    found = codes(r.warnings)
    assert ("leading_assistant", 1, "messages[0]") in found
    assert ("no_assistant", 2, "messages") in found
    assert ("system_middle", 3, "messages[2]") in found
    assert ("empty_content", 4, "messages[1]") in found
    assert ("duplicate", 6, "") in found
    assert ("consecutive_user", 7, "messages[1]") in found
    assert ("consecutive_assistant", 7, "messages[3]") in found
    assert ("trailing_user", 7, "messages[4]") in found
    dup = next(w for w in r.warnings if w.code == "duplicate")
    assert "line 5" in dup.message and str(dup).startswith("warn_openai.jsonl, line 6")
    assert r.trainable == r.records - 1


def test_the_seeds_identical_rows_are_counted_as_duplicates():
    r = validate(CORPUS / "seed_identical_rows.json")
    assert r.ok and r.records == 50
    assert r.warning_counts["duplicate"] == 49
    assert len([w for w in r.warnings if w.code == "duplicate"]) == datasets.MAX_EXAMPLES


def test_wrong_types_each_get_line_field_and_message():
    r = validate(CORPUS / "bad_types.jsonl")
    assert not r.ok and r.records == 1
    found = codes(r.errors)
    assert ("bad_role", 2, "messages[0].role") in found
    assert ("wrong_type", 3, "messages[0].content") in found
    assert ("wrong_type", 4, "messages") in found
    assert ("empty_list", 5, "messages") in found
    assert ("missing_field", 6, "messages") in found
    assert ("not_object", 7, "") in found
    assert ("content_parts", 8, "messages[0].content") in found
    assert ("format_mismatch", 9, "") in found
    assert ("missing_field", 10, "messages[0].role") in found
    msg = {e.line: str(e) for e in r.errors}
    assert msg[3] == "bad_types.jsonl, line 3, messages[0].content: Must be text, got a number."
    assert "'bot' is not a known role" in msg[2]


@pytest.mark.parametrize("name, code, line, words", [
    ("bad_json_line.jsonl", "bad_json", 2, "Not valid JSON at column"),
    ("bad_truncated.jsonl", "truncated", 2, "truncated"),
    ("bad_truncated_array.json", "truncated", 14, "ends early"),
    ("bad_array_unclosed.json", "truncated", None, "not closed"),
    ("bad_array_syntax.json", "bad_json", 18, "broken here"),
    ("bad_latin1.jsonl", "bad_encoding", 2, "UTF-8"),
    ("bad_utf16.jsonl", "utf16", None, "UTF-16"),
    ("bad_binary.jsonl", "binary", None, "binary"),
    ("bad_gzip.jsonl.gz", "gzip", None, "gunzip"),
    ("bad_pretty_object.jsonl", "pretty", 1, "pretty-printed"),
    ("bad_top_level_object.json", "unknown_format", 1, "(data)"),
    ("bad_empty.jsonl", "empty_file", None, "empty"),
])
def test_unreadable_input_gets_a_precise_error(name, code, line, words):
    r = validate(CORPUS / name)
    assert not r.ok
    err = next((e for e in r.errors if e.code == code), None)
    assert err is not None, [(e.code, str(e)) for e in r.errors]
    if line is not None:
        assert err.line == line, str(err)
    assert words in str(err)


def test_a_file_with_nothing_to_train_is_an_error(tmp_path):
    """Records that are all readable but none with an answer: XTuner would drop every one."""
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"}]}) + "\n"
                            for i in range(3)))
    r = validate(path)
    assert not r.ok and (r.records, r.trainable) == (3, 0)
    assert [e.code for e in r.errors] == ["nothing_to_train"]
    assert r.warning_counts["no_assistant"] == 3
    path.write_text(path.read_text() + json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                                                 {"role": "assistant", "content": "Hello"}]}) + "\n")
    assert validate(path).ok  # one trainable record is enough


@pytest.mark.parametrize("container, line", [("jsonl", 2), ("json", 3)])
def test_a_lone_surrogate_escape_is_an_error_with_line_and_field(tmp_path, container, line):
    good = {"messages": [{"role": "user", "content": "Hi \\ud83d\\ude00"}, {"role": "assistant", "content": "Hello"}]}
    bad = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "broken \\ud800 here"}]}
    rows = [json.dumps(good).replace("\\\\", "\\"), json.dumps(bad).replace("\\\\", "\\")]
    assert "\\ud800" in rows[1]  # the escape as it stands in the file
    path = tmp_path / f"data.{container}"
    path.write_text("\n".join(rows) + "\n" if container == "jsonl" else "[\n" + ",\n".join(rows) + "\n]\n")
    r = validate(path)
    assert not r.ok and r.records == 1  # the emoji (a surrogate pair) is fine
    assert codes(r.errors) == {("surrogate", line, "messages[1].content")}
    assert "\\ud800" in r.errors[0].message
    assert not convert(path, tmp_path / "out.jsonl").out_path and not (tmp_path / "out.jsonl").exists()


def test_other_formats_report_their_own_fields():
    assert ("wrong_type", 2, "input") in codes(validate(CORPUS / "bad_alpaca_types.jsonl").errors)
    assert ("missing_field", 3, "output") in codes(validate(CORPUS / "bad_alpaca_types.jsonl").errors)
    share = codes(validate(CORPUS / "bad_sharegpt.jsonl").errors)
    assert ("bad_role", 1, "conversations[1].from") in share and ("missing_field", 1, "conversations[2].value") in share
    xt = codes(validate(CORPUS / "bad_xtuner.jsonl").errors)
    assert ("wrong_type", 1, "conversation[0].output") in xt and ("wrong_type", 1, "conversation[1].output_with_loss") in xt


def test_every_error_in_a_file_is_found_in_one_pass(tmp_path):
    p = tmp_path / "many.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    p.write_text("\n".join(good if i % 10 else "{broken" for i in range(1, 1001)) + "\n")
    r = validate(p)
    assert r.error_count == 100 and len(r.errors) == datasets.MAX_ISSUES and r.records == 900


@pytest.mark.parametrize("name", ["good_openai_array.json", "good_xtuner.jsonl", "good_alpaca.json",
                                  "good_sharegpt.json", "good_oasst1.jsonl", "good_alpaca_zh.jsonl"])
def test_conversion_to_openai_jsonl_round_trips(tmp_path, name):
    out = tmp_path / datasets.converted_name(name)
    res = convert(CORPUS / name, out)
    assert res.out_path == out and res.written == validate(CORPUS / name).records
    again = validate(out)
    assert again.ok and again.format == "openai" and again.container == "jsonl"
    assert [t for _, t in preview_turns(out, 10)] == [t for _, t in preview_turns(CORPUS / name, 10)]
    assert oct(out.stat().st_mode & 0o777) == "0o644"


def test_conversion_can_drop_duplicates_and_untrainable_records(tmp_path):
    res = convert(CORPUS / "warn_openai.jsonl", tmp_path / "w.jsonl", drop_duplicates=True, drop_untrainable=True)
    assert (res.written, res.dropped_duplicates, res.dropped_untrainable) == (5, 1, 1)
    res = convert(CORPUS / "seed_identical_rows.json", tmp_path / "s.jsonl", drop_duplicates=True)
    assert res.written == 1


@pytest.mark.parametrize("name", ["bad_types.jsonl", "bad_truncated_array.json", "bad_latin1.jsonl", "bad_binary.jsonl"])
def test_bad_input_changes_nothing(tmp_path, name):
    out = tmp_path / "out.jsonl"
    out.write_text("previous content\n")
    res = convert(CORPUS / name, out)
    assert res.out_path is None and res.report.error_count
    assert out.read_text() == "previous content\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]  # no temporary file left behind


def test_a_huge_json_array_is_read_in_flat_memory(tmp_path):
    """Records of a 40 MB one-line JSON array stream through a window of ~1 MB."""
    p = tmp_path / "big.json"
    rec = json.dumps({"messages": [{"role": "user", "content": "q" * 200}, {"role": "assistant", "content": "a" * 800}]})
    with open(p, "w") as f:
        f.write("[" + ",".join(rec for _ in range(40_000)) + "]")
    from core.data import datareader

    biggest = 0
    real_fill = datareader._ArrayReader.fill

    def spy(self):
        nonlocal biggest
        out = real_fill(self)
        biggest = max(biggest, len(self.buf))
        return out

    datareader._ArrayReader.fill = spy
    try:
        r = validate(p)
    finally:
        datareader._ArrayReader.fill = real_fill
    assert r.ok and r.records == 40_000 and r.warning_counts["duplicate"] == 39_999
    assert biggest < 3 * datareader.CHUNK


def test_a_record_split_across_chunks_is_read_whole(tmp_path, monkeypatch):
    from core.data import datareader

    monkeypatch.setattr(datareader, "CHUNK", 7)  # every record crosses many chunk borders
    r = validate(CORPUS / "good_openai_array.json")
    assert r.ok and r.records == 2
    assert validate(CORPUS / "bad_truncated_array.json").errors[0].code == "truncated"
    r = validate(CORPUS / "good_sharegpt.json")
    assert r.ok and r.records == 2


def test_parquet_is_read_row_by_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "train.parquet"
    pq.write_table(pa.table({"instruction": ["Say hi", "Count"], "input": ["", "1 2"], "output": ["hi", "1, 2"]}), p)
    r = validate(p)
    assert r.ok and (r.format, r.container, r.records) == ("alpaca", "parquet", 2)
    assert convert(p, tmp_path / "t.jsonl").written == 2


def test_preview_reads_the_first_records(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": str(i)}]}) for i in range(100)))
    assert [r["messages"][0]["content"] for r in preview_records(p, 2)] == ["0", "1"]
    assert preview_records(CORPUS / "bad_binary.jsonl") == []


def test_data_files_lists_the_dataset_files_of_a_download(tmp_path):
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.json").write_text("[]")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.parquet").write_bytes(b"PAR1" + b"x" * 100)
    (tmp_path / "README.md").write_text("readme")
    (tmp_path / "small.jsonl").write_text("{}\n")
    assert [p.name for p in datasets.data_files(tmp_path)] == ["train.parquet", "small.jsonl"]


def test_a_line_cut_at_its_end_reports_the_column_where_it_stops(tmp_path):
    """json counts the line's own newline as the start of a second line ("column 1"): the column is
    the end of the text on that line."""
    cut = '{"messages": [{"role": "user", "content": "hi"}'
    f = tmp_path / "cut.jsonl"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
                 + "\n" + cut + "\n" + json.dumps({"messages": [{"role": "user", "content": "c"}]}) + "\n")
    err = next(e for e in validate(f).errors if e.line == 2)
    assert err.params["column"] == len(cut) + 1, str(err)
    assert f"column {len(cut) + 1}" in str(err)


@pytest.mark.parametrize("container", ["json", "jsonl"])
def test_a_llava_file_is_refused_as_an_image_dataset_not_converted(tmp_path, container):
    """LLaVA records (``image`` + ``<image>`` in ShareGPT conversations) are not text: converting them
    would drop the images and keep a literal ``<image>``."""
    text = {"conversations": [{"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi"}]}
    image = {"id": "1", "image": "a.png",
             "conversations": [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."}]}
    recs = [text, image]
    path = tmp_path / f"llava.{container}"
    path.write_text("[\n" + ",\n".join(map(json.dumps, recs)) + "\n]" if container == "json"
                    else "".join(json.dumps(r) + "\n" for r in recs))
    r = validate(path)
    assert not r.ok
    assert codes(r.errors) == {("image_dataset", 3 if container == "json" else 2, "image")}
    assert "Switch to vision-language" in str(r.errors[0])
    out = tmp_path / "out.jsonl"
    assert convert(path, out).out_path is None and not out.exists()
    # <image> alone (no image field) is enough
    path.write_text(json.dumps([{"conversations": [{"from": "human", "value": "<image> hi"},
                                                   {"from": "gpt", "value": "ok"}]}]))
    assert codes(validate(path).errors) == {("image_dataset", 1, "conversations")}
    path.write_text(json.dumps([text]))
    assert validate(path).ok  # plain ShareGPT stays text

import json

from core.datasets import preview_records, validate


def w(path, text, mode="w"):
    path.write_text(text, encoding="utf-8") if mode == "w" else path.write_bytes(text)
    return path


def msg(q="hi", a="hello"):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def test_jsonl_and_json_array_are_accepted(tmp_path):
    r = validate(w(tmp_path / "a.jsonl", "\n".join(json.dumps(msg()) for _ in range(3)) + "\n"))
    assert r.ok and r.records == 3 and r.format == "openai-jsonl"
    r = validate(w(tmp_path / "b.json", json.dumps([msg()] * 4, indent=4)))
    assert r.ok and r.records == 4 and r.format == "openai-json"


def test_errors_name_line_and_field(tmp_path):
    lines = [json.dumps(msg()), "{not json", json.dumps({"messages": [{"role": "bot", "content": "x"}]}),
             json.dumps({"text": "x"}), json.dumps({"messages": [{"role": "user", "content": 3}]})]
    r = validate(w(tmp_path / "bad.jsonl", "\n".join(lines)))
    assert not r.ok
    found = {(i.line, i.field) for i in r.errors}
    assert (2, "") in found
    assert (3, "messages[0].role") in found
    assert (4, "messages") in found
    assert (5, "messages[0].content") in found


def test_binary_and_wrong_encoding_are_refused(tmp_path):
    assert "binary" in str(validate(w(tmp_path / "x.jsonl", b"\x00\x01\x02", mode="b")).errors[0])
    r = validate(w(tmp_path / "y.jsonl", json.dumps(msg("caf\u00e9"), ensure_ascii=False).encode("latin-1"), mode="b"))
    assert not r.ok and "UTF-8" in str(r.errors[0])


def test_empty_file_and_missing_assistant(tmp_path):
    assert "no records" in str(validate(w(tmp_path / "e.jsonl", "\n\n")).errors[0])
    r = validate(w(tmp_path / "n.jsonl", json.dumps({"messages": [{"role": "user", "content": "q"}]})))
    assert r.ok and "no assistant turn" in str(r.warnings[0])


def test_preview_reads_the_first_records(tmp_path):
    p = w(tmp_path / "a.jsonl", "\n".join(json.dumps(msg(str(i))) for i in range(100)))
    assert [r["messages"][0]["content"] for r in preview_records(p, 2)] == ["0", "1"]

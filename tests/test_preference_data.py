"""core.data.preference: the preference formats XTuner trains on, errors with line and field, conversion."""
import json

import pytest

from core.data import preference

U = {"role": "user", "content": "Who are you?"}
GOOD = {"role": "assistant", "content": "I am Ada's assistant."}
BAD = {"role": "assistant", "content": "I am a tiny model."}
PAIR = {"prompt": [U], "chosen": [GOOD], "rejected": [BAD]}


def write(tmp_path, records, name="pairs.jsonl"):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return p


def errors(report):
    return [(i.code, i.line, i.field) for i in report.errors]


@pytest.mark.parametrize("record, fmt, canonical", [
    (PAIR, "prompt", True),
    ({"prompt": "Who are you?", "chosen": "I am Ada's assistant.", "rejected": "I am a tiny model."}, "prompt", False),
    ({"system": "", "question": "Who are you?", "chosen": "I am Ada's assistant.", "rejected": "I am a tiny model."},
     "orca", False),
    ({"chosen": [U, GOOD], "rejected": [U, BAD]}, "implicit", False),
])
def test_every_format_becomes_xtuners_pair(tmp_path, record, fmt, canonical):
    src = write(tmp_path, [record, record])
    report = preference.validate(src)
    assert report.ok, [str(e) for e in report.errors]
    assert (report.format, report.records, report.needs_conversion) == (fmt, 2, not canonical)
    res = preference.convert(src, tmp_path / "out.jsonl")
    assert res.written == 2
    lines = [json.loads(x) for x in res.out_path.read_text().splitlines()]
    assert lines == [PAIR, PAIR]  # exactly what xtuner.dataset.preference_dataset.tokenize reads


def test_system_text_is_the_prompts_first_message(tmp_path):
    rec = {"system": "Be brief.", "question": "Who are you?", "chosen": "Ada's.", "rejected": "Nobody's."}
    report = preference.validate(write(tmp_path, [rec]))
    assert report.preview[0]["prompt"] == [{"role": "system", "content": "Be brief."}, U]


def test_bad_records_name_line_and_field(tmp_path):
    records = [
        PAIR,
        {"prompt": [U], "chosen": [GOOD], "rejected": [GOOD]},  # 2: same answer
        {"prompt": [U], "chosen": [GOOD]},  # 3: missing rejected
        {"prompt": "  ", "chosen": "a", "rejected": "b"},  # 4: empty prompt
        {"prompt": [U], "chosen": [{"role": "user", "content": "x"}], "rejected": [BAD]},  # 5: chosen not assistant
        {"prompt": [GOOD], "chosen": [GOOD], "rejected": [BAD]},  # 6: prompt does not end with the user
        {"prompt": [U], "chosen": [{"role": "assistant"}], "rejected": [BAD]},  # 7: no content
        {"prompt": [U], "chosen": [GOOD], "rejected": 3},  # 8: wrong type
        {"prompt": [U], "chosen": [], "rejected": [BAD]},  # 9: empty list
        {"prompt": [U], "chosen": [{"role": "bot", "content": "x"}], "rejected": [BAD]},  # 10: unknown role
    ]
    report = preference.validate(write(tmp_path, records))
    assert not report.ok and report.records == 1
    assert errors(report) == [
        ("same", 2, "chosen, rejected"),
        ("missing_field", 3, "rejected"),
        ("empty", 4, "prompt"),
        ("not_assistant", 5, "chosen[0].role"),
        ("prompt_end", 6, "prompt"),
        ("missing_field", 7, "chosen[0].content"),
        ("wrong_type", 8, "rejected"),
        ("empty", 9, "chosen"),
        ("bad_role", 10, "chosen[0].role"),
    ]
    assert str(report.errors[0]).startswith("pairs.jsonl, line 2, chosen, rejected: Chosen and rejected are the same")


def test_implicit_conversations_must_share_their_beginning(tmp_path):
    other = {"role": "user", "content": "Hello?"}
    report = preference.validate(write(tmp_path, [{"chosen": [U, GOOD], "rejected": [other, BAD]},
                                                  {"chosen": [U, GOOD], "rejected": [U, GOOD]}]))
    assert errors(report) == [("not_shared", 1, "chosen, rejected"), ("same", 2, "chosen, rejected")]


def test_not_a_preference_file(tmp_path):
    report = preference.validate(write(tmp_path, [{"messages": [U, GOOD]}]))
    assert errors(report) == [("unknown_format", 1, "")]
    assert "messages" in report.errors[0].message
    mixed = preference.validate(write(tmp_path, [PAIR, {"question": "q", "chosen": "a", "rejected": "b"}]))
    assert errors(mixed) == [("format_mismatch", 2, "")]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert not preference.validate(empty).ok


def test_a_json_array_is_converted_and_a_bad_file_writes_nothing(tmp_path):
    arr = tmp_path / "pairs.json"
    arr.write_text(json.dumps([PAIR]))
    report = preference.validate(arr)
    assert report.ok and report.container == "json" and report.needs_conversion
    out = tmp_path / preference.converted_name(arr)
    assert out.name == "pairs.preference.jsonl"
    assert preference.convert(arr, out).written == 1
    bad = write(tmp_path, [PAIR, {"prompt": [U], "chosen": [GOOD], "rejected": [GOOD]}], "bad.jsonl")
    res = preference.convert(bad, tmp_path / "bad.out.jsonl")
    assert res.out_path is None and not (tmp_path / "bad.out.jsonl").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


"""core.data.databuild: the self-introduction builder (with general data) and find/replace."""
import json
import os
from pathlib import Path

import pytest

from core.data import databuild
from core.data.datasets import validate

CORPUS = Path(__file__).parent / "data" / "datasets"


def read(p):
    return [json.loads(line) for line in Path(p).read_text(encoding="utf-8").splitlines()]


def test_self_intro_builds_a_valid_openai_dataset(tmp_path):
    res = databuild.build_self_intro(tmp_path / "me.jsonl", "Ada", ["Who are you?", " ", "你是谁？"],
                                     ["I am {name}'s assistant.", "{name} made me."], copies=40)
    recs = read(res.path)
    assert res.identity == 40 and res.general == 0 and len(recs) == 40
    assert {r["messages"][0]["content"] for r in recs} == {"Who are you?", "你是谁？"}
    assert {r["messages"][1]["content"] for r in recs} == {"I am Ada's assistant.", "Ada made me."}
    r = validate(res.path)
    assert r.ok and r.format == "openai"


def test_general_data_is_mixed_in_against_overfitting(tmp_path):
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"instruction": f"task {i}", "input": "", "output": f"done {i}"}) + "\n"
                               for i in range(200)))
    res = databuild.build_self_intro(tmp_path / "mix.jsonl", "Ada", ["Who are you?"], ["{name}'s helper."],
                                     copies=60, general_path=general, general_share=0.5)
    recs = read(res.path)
    assert (res.identity, res.general, len(recs)) == (60, 60, 120)
    assert sum(r["messages"][0]["content"].startswith("task") for r in recs) == 60
    assert recs[:60] != [r for r in recs if r["messages"][0]["content"] == "Who are you?"], "shuffled"


def test_user_text_is_never_a_format_string(tmp_path):
    res = databuild.build_self_intro(tmp_path / "x.jsonl", "{0.__class__}", ["q {name} {x}"], ["a {name} {}"],
                                     copies=1)
    msgs = read(res.path)[0]["messages"]
    assert msgs[0]["content"] == "q {0.__class__} {x}" and msgs[1]["content"] == "a {0.__class__} {}"


@pytest.mark.parametrize("kwargs, words", [
    ({"name": " "}, "name"), ({"questions": []}, "question"), ({"answers": [""]}, "answer"),
    ({"copies": 0}, "between 1"), ({"general_share": 0.95}, "90%"),
])
def test_builder_refuses_bad_input(tmp_path, kwargs, words):
    args = {"name": "Ada", "questions": ["q"], "answers": ["a"], "copies": 5} | kwargs
    with pytest.raises(databuild.BuildError) as e:
        databuild.build_self_intro(tmp_path / "x.jsonl", **args)
    assert words in str(e.value) and not (tmp_path / "x.jsonl").exists()


def test_find_replace_works_like_the_seeds_change_script(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"messages": [{"role": "user", "content": "Who is 尖米?"},
                                            {"role": "assistant", "content": "尖米's assistant, 尖米!"}]},
                              ensure_ascii=False) + "\n" + json.dumps({"messages": []}) + "\n", encoding="utf-8")
    res = databuild.find_replace(src, tmp_path / "b.jsonl", "尖米", "Ada")
    assert (res.records, res.changed_records, res.replacements) == (2, 1, 3)
    assert read(res.path)[0]["messages"][1]["content"] == "Ada's assistant, Ada!"
    assert read(res.path)[0]["messages"][0]["role"] == "user"  # keys and other values untouched


def test_find_replace_reads_json_arrays_and_refuses_broken_files(tmp_path):
    res = databuild.find_replace(CORPUS / "good_alpaca.json", tmp_path / "al.jsonl", "three", "3")
    assert res.replacements == 1 and len(read(res.path)) == 2
    out = tmp_path / "bad.jsonl"
    res = databuild.find_replace(CORPUS / "bad_json_line.jsonl", out, "hi", "ho")
    assert res.path is None and "line 2" in str(res.error) and not out.exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []
    res = databuild.find_replace(CORPUS / "bad_truncated_array.json", out, "hi", "ho")
    assert res.path is None and "line 14" in str(res.error) and not out.exists()

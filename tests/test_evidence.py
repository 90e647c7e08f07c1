"""Scored evaluation answers and the suggested checkpoint: scoring, the heat-map, Results and Convert."""
import json
import zipfile

import pytest

from core.project import ProjectStore
from core.results import best, charts, scoring
from core.results.scoring import ExpectedAnswer
from core.train import runs
from tests.apptests import open_page
from ui import i18n

LITERAL = "{name} said \"{0}\" and '{{x}}'"  # braces and quotes: compared as typed, never formatted


def test_contains_exact_and_rouge_l_scores():
    contains = ExpectedAnswer(text="Ada's assistant\ntiny model\n", metric="contains")
    assert scoring.score("I am ADA'S assistant.", contains) == 0.5
    assert scoring.score("I am Ada's assistant, a tiny model", contains) == 1.0
    exact = ExpectedAnswer(text="I am  Ada's assistant", metric="exact")
    assert scoring.score(" i am ada's\nassistant ", exact) == 1.0 and scoring.score("I am Ada", exact) == 0.0
    rouge = ExpectedAnswer(text="I am Ada's assistant, a tiny model", metric="rouge_l")
    assert scoring.score("I am Ada's assistant, a tiny model", rouge) == pytest.approx(1.0)
    assert 0.5 < scoring.score("I am Ada's assistant", rouge) < 1.0
    assert scoring.score("noise", rouge) == 0.0
    assert scoring.score("我是小助手", ExpectedAnswer(text="我是助手", metric="rouge_l")) > 0.8  # CJK: per character
    assert scoring.score("anything", ExpectedAnswer(text="  ")) is None


def test_braces_and_quotes_in_an_expected_answer_stay_literal():
    for metric in ("contains", "exact", "rouge_l"):
        assert scoring.score(LITERAL, ExpectedAnswer(text=LITERAL, metric=metric)) == pytest.approx(1.0)
    assert scoring.score("{name}", ExpectedAnswer(text=LITERAL, metric="exact")) == 0.0


def test_score_table_means_and_heatmap():
    answers = {20: ["noise", "x"], 40: ["I am Ada's assistant", "y"], 60: ["I am Ada's assistant", ""]}
    questions = ["Who are you?", "Other?", "Not asked"]
    expected = scoring.expected_by_question(questions, [ExpectedAnswer(text="Ada's assistant"), ExpectedAnswer(),
                                                        ExpectedAnswer(text="z")])
    assert list(expected) == ["Who are you?", "Not asked"]
    table = scoring.score_table(answers, questions, expected)
    assert table == {0: {20: 0.0, 40: 1.0, 60: 1.0}, 2: {20: 0.0, 40: 0.0, 60: 0.0}}
    assert scoring.mean_scores(table) == {20: 0.0, 40: 0.5, 60: 0.5}
    fig = charts.score_heatmap(table, questions, [20, 40, 60], tr=lambda s: s)
    heat = fig.data[0]
    assert list(heat.y) == ["Q1", "Q3"] and list(heat.x) == ["iter 20", "iter 40", "iter 60"]
    assert [list(r) for r in heat.z] == [[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]


def test_the_suggestion_weighs_scores_and_held_out_loss():
    heldout = ([20, 40, 60, 80], [2.0, 0.5, 0.6, 1.0])
    assert best.suggest([20, 40, 60, 80], heldout, {}) == best.Suggestion(40, None, 0.5)
    scores = {20: 0.0, 40: 0.5, 60: 1.0, 80: 1.0}
    # 60: score 1.0, loss part (2.0-0.6)/1.5 ≈ 0.93 beats 40 (0.5, 1.0) and 80 (1.0, 0.67)
    assert best.suggest([20, 40, 60, 80], heldout, scores) == best.Suggestion(60, 1.0, 0.6)
    assert best.suggest([60, 80], ([], []), {60: 1.0, 80: 1.0}).iteration == 60  # a tie: the earlier
    assert best.suggest([20, 40], heldout, scores).iteration == 40  # only checkpoints still on disk
    assert best.suggest([100], heldout, scores) is None


# --- pages, on a made-up run (its files as XTuner writes them) -------------------------------------
def fake_run(ws):
    store = ProjectStore(ws)
    project = store.create("demo", method="lora", prompt_template="qwen_chat", model_path=str(ws / "model"),
                           dataset_path=str(ws / "d.jsonl"), evaluation_inputs=["Who are you?", "2+2?"],
                           evaluation_expected=[ExpectedAnswer(text=LITERAL, metric="exact"),
                                                ExpectedAnswer(text="4", metric="contains")])
    run_dir = project.runs_dir / "20260101-000000-lora"
    vis = run_dir / "work_dir" / "20260101_000000" / "vis_data"
    vis.mkdir(parents=True)
    (run_dir / "config.py").write_text("# made up\n")
    (run_dir / "run.json").write_text(json.dumps({"id": run_dir.name, "spec": {
        "method": "lora", "prompt_template": "qwen_chat", "evaluation_inputs": ["Who are you?", "2+2?"]}}))
    lines = [{"loss": 3.0 - i / 50, "iter": i, "step": i} for i in range(1, 61)]
    for it, loss in ((20, 1.0), (40, 0.4), (60, 0.5)):
        lines.insert(it + [20, 40, 60].index(it), {"heldout_loss": loss, "heldout_s": 0.1, "step": it})
    (vis / "scalars.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    for it, first in ((20, "noise"), (40, "noise"), (60, LITERAL)):
        (vis / f"eval_outputs_iter_{it - 1}.txt").write_text(f"Eval output 1:\n{first}\n\nEval output 2:\n4\n\n")
        with zipfile.ZipFile(run_dir / "work_dir" / f"iter_{it}.pth", "w") as z:
            z.writestr("data.pkl", b"x")
    return project, runs.Run(run_dir)


def test_results_suggests_a_checkpoint_and_draws_the_heatmap(workspace):
    project, run = fake_run(workspace)
    # 60 scores 100 % (the literal answer, exactly), held-out loss close to the lowest; 40 has the lowest at 50 %
    assert best.suggest_for_run(run, project.evaluation_expected, project.evaluation_inputs).iteration == 60
    at = open_page(workspace, "pages/results.py")
    assert any("iter 60" in i.value and "100%" in i.value for i in at.info), [i.value for i in at.info]
    (heat,) = [json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart") if c.key == "res_scores"]
    assert heat[0]["type"] == "heatmap" and heat[0]["z"] == [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    assert any("Lowest held-out loss: 0.4000 at iter 40" in c.value for c in at.caption)
    i18n.reset_missing()
    zh = open_page(workspace, "pages/results.py", lang="zh")
    assert any("建议的检查点" in i.value for i in zh.info)
    open_page(workspace, "pages/convert_chat.py", lang="zh")
    open_page(workspace, "pages/train.py", lang="zh")
    assert i18n.missing_keys() == set()


def test_convert_preselects_the_suggested_checkpoint(workspace):
    fake_run(workspace)
    at = open_page(workspace, "pages/convert_chat.py")
    assert at.selectbox(key="conv_iter").value == 60
    assert any("Suggested checkpoint" in c.value for c in at.caption)


def test_configure_saves_expected_answers_beside_their_questions_as_typed(demo_workspace, tmp_path):
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    at = open_page(ws, "pages/configure.py")
    next(w for w in at.number_input if w.label == "Number of evaluation questions").set_value(3).run()
    questions = [a for a in at.text_area if a.label.startswith("Question ")]
    expected = [a for a in at.text_area if a.label.startswith("Expected answer")]
    assert len(questions) == len(expected) == 3
    questions[1].set_value("")  # dropped with its expected answer
    expected[1].set_value("gone")
    questions[2].set_value("Say it")
    expected[2].set_value(LITERAL)
    at.selectbox(key=expected[2].key.replace("eval_expected", "eval_metric")).set_value("exact")
    at.button(key="FormSubmitter:evaluation-Save evaluation").click().run()
    assert not at.error
    project = ProjectStore(ws).load("demo")
    assert project.evaluation_inputs == ["Who are you?", "Say it"]
    assert project.evaluation_expected == [ExpectedAnswer(), ExpectedAnswer(text=LITERAL, metric="exact")]


def test_run_comparison_overlays_held_out_loss(workspace):
    import shutil

    _, run = fake_run(workspace)
    shutil.copytree(run.dir, run.dir.with_name("20260102-000000-lora"))
    at = open_page(workspace, "pages/results.py")
    (fig,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "cmp_heldout_loss"]
    assert [list(trace["x"]) for trace in fig["data"]] == [[20, 40, 60]] * 2

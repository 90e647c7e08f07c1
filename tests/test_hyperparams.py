"""The hyperparameter schema (core/train/hyperparams.py) is the one source of every setting."""
import ast
import json
from pathlib import Path

from core.train.config_import import parse_config
from core.train.configgen import TrainSpec, render_config
from core.train.hyperparams import Hyperparams, defaults, settings
from core.train.presets import BUILTIN

REPO = Path(__file__).resolve().parent.parent
SCHEMA = "core/train/hyperparams.py"


def _literal(node) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, SyntaxError, TypeError):
        return False


def declarations(root: Path = REPO) -> dict[str, set[str]]:
    """{setting: files declaring its default or bounds}: a class field of that name with a value, a literal
    given as ``name=...`` or ``{"name": ...}``, or a widget with literal min/max that names the setting."""
    names = {s.name for s in settings()}
    found = {name: set() for name in names}
    files = [root / "core" / "project.py", *(root / "core" / "train").glob("*.py"), *(root / "pages").glob("*.py"),
             *(root / "ui").glob("*.py")]
    for path in files:
        rel = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                            and item.target.id in names and item.value is not None):
                        found[item.target.id].add(rel)
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg in names and _literal(kw.value):
                        found[kw.arg].add(rel)
                if any(kw.arg in ("min_value", "max_value") and _literal(kw.value) for kw in node.keywords):
                    for sub in ast.walk(node):
                        if isinstance(sub, ast.Constant) and sub.value in names:
                            found[sub.value].add(rel)
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values):
                    if (isinstance(k, ast.Constant) and k.value in names and _literal(v)
                            and not isinstance(ast.literal_eval(v), str)):
                        found[k.value].add(rel)
    return found


def test_each_hyperparameter_default_and_bounds_are_declared_in_one_place():
    assert {name: sorted(files) for name, files in declarations().items() if files != {SCHEMA}} == {}


def test_the_counter_finds_a_second_declaration(tmp_path):
    """The check above can fail: a copy of a default elsewhere is found."""
    for part in ("core/train", "pages", "ui"):
        (tmp_path / part).mkdir(parents=True)
    (tmp_path / SCHEMA).write_text((REPO / SCHEMA).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "core" / "project.py").write_text("", encoding="utf-8")
    (tmp_path / "core" / "train" / "presets.py").write_text(
        "D = dict(max_norm=1.0)\nclass Spec:\n    seed: int = 3\n", encoding="utf-8")
    (tmp_path / "pages" / "configure.py").write_text(
        "st.number_input('x', min_value=1, help=help_of('lora_r'))\n", encoding="utf-8")
    found = declarations(tmp_path)
    assert found["max_norm"] == {SCHEMA, "core/train/presets.py"}
    assert found["lora_r"] == {SCHEMA, "pages/configure.py"}
    assert found["seed"] == {SCHEMA, "core/train/presets.py"}
    assert found["lr"] == {SCHEMA}


def _other_value(s):
    """A valid value of setting ``s`` different from its default."""
    if s.kind == "bool":
        return not s.default
    if s.kind == "choice":
        return next(c for c in s.choices if c != s.default)
    if s.kind == "pair":
        return tuple(round(v * 0.99, 6) for v in s.default)
    if s.kind == "names":
        return ["q_proj", "v_proj"]
    if s.kind == "optional_int":
        return 7
    if s.kind == "int":
        return s.default + 1
    return s.default / 2 if s.default else 0.01


def test_config_generation_and_import_cover_exactly_the_schema():
    """Every setting reaches the generated config and comes back from it by its XTuner name."""
    values = {s.name: _other_value(s) for s in settings()}
    hp = Hyperparams(**values)
    assert hp != Hyperparams()
    spec = TrainSpec(method="lora", model_path="/m", prompt_template="qwen_chat", dataset_path="/d.jsonl",
                     hyperparams=hp, device="cpu")
    imported = parse_config(render_config(spec))
    assert imported.errors == []
    assert imported.hyperparams == hp.model_dump()
    assert set(imported.mapped) >= set(values)
    assert {imported.mapped[s.name] for s in settings()} == {s.xtuner for s in settings()}


def test_presets_are_the_schema_defaults_per_method():
    assert BUILTIN["full"] == defaults("full") and BUILTIN["full"].lr == 2e-5
    assert BUILTIN["lora"] == BUILTIN["qlora"] == Hyperparams()


def test_lora_settings_apply_to_adapter_methods_only():
    lora = {s.name for s in settings() if not s.applies_to("full")}
    assert lora == {"lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"}
    assert all(s.applies_to("qlora") and s.applies_to("lora") for s in settings())


def test_every_label_help_and_unit_of_the_schema_is_translated():
    zh = {}
    for path in (REPO / "ui" / "locales" / "zh").glob("*.json"):
        zh |= json.loads(path.read_text(encoding="utf-8"))
    texts = {text for s in settings() for text in (s.label, s.help, s.unit) if text}
    assert sorted(texts - set(zh)) == []

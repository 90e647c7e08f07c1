"""Vision-language evaluation: the Configure editor's rows as the project's (image, question) pairs."""
from __future__ import annotations

from core.errors import UserError
from core.project import VisionEvalPair
from core.train.hyperparams import check_evaluation_inputs

E_HALF_ROW = "Evaluation row {n} needs both an image path and a question."
MESSAGES = [E_HALF_ROW]


def pairs_from_rows(rows: list[dict]) -> list[VisionEvalPair]:
    """``[{"image", "question"}]`` as pairs: blank rows dropped; UserError for a half-filled row or too many."""
    out = []
    for n, row in enumerate(rows, start=1):
        image, question = (v.strip() if isinstance(v, str) else "" for v in (row.get("image"), row.get("question")))
        if not (image or question):
            continue
        if not (image and question):
            raise UserError(E_HALF_ROW, n=n)
        out.append(VisionEvalPair(image=image, question=question))
    check_evaluation_inputs([p.question for p in out])
    return out

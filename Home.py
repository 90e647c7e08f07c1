"""XTuner Studio: ``streamlit run Home.py``. The router and frame live in ui/frame.py; each workflow
step is a page in pages/."""
from ui.frame import run_router

run_router()

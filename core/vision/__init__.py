"""Vision-language (XTuner's LLaVA): dataset validation, the tiny offline demo, stage 1/2 configs."""

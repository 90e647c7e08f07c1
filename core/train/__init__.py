"""Training: config generation and import, presets, launch plans, runs, hooks inside XTuner."""

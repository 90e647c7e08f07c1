"""Reading what runs wrote: scalars, logs, evaluation answers; charts and comparisons."""

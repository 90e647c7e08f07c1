"""mmengine pieces the generated configs use; imported only inside the training process.

- ``StudioProgressHook`` writes ``progress.json`` (iteration / total, epoch, elapsed, ETA, tokens/s),
  throttled so it costs nothing measurable per iteration.
- ``StudioStopHook`` honours a stop request file at the next iteration boundary: it saves a
  checkpoint for the iteration just finished (unless the regular CheckpointHook just did) and ends
  training cleanly, so a stop loses at most the iteration in flight.
- ``WarmupLinearLR`` is mmengine's ``LinearLR`` that keeps at least one warmup iteration, where
  ``LinearLR`` raises ``end should be larger than begin`` on short runs.
"""
from __future__ import annotations

import os
import time

from mmengine.hooks import CheckpointHook, Hook
from mmengine.optim.scheduler import LinearLR
from mmengine.optim.scheduler.param_scheduler import INF

from core.fsutil import atomic_write_json


class WarmupLinearLR(LinearLR):
    @classmethod
    def build_iter_from_epoch(cls, *args, begin=0, end=INF, by_epoch=True, epoch_length=None, **kwargs):
        assert by_epoch and epoch_length, "WarmupLinearLR converts an epoch-based range to iterations"
        begin = int(begin * epoch_length)
        end = INF if end == INF else max(int(end * epoch_length), begin + 1)
        return cls(*args, begin=begin, end=end, by_epoch=False, **kwargs)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class StudioProgressHook(Hook):
    priority = "LOW"

    def __init__(self, progress_file: str | None = None, min_interval_s: float = 0.5):
        self.progress_file = progress_file
        self.min_interval_s = min_interval_s
        self._last_write = 0.0
        self._t0 = 0.0
        self._iter0 = 0
        self._tokens = 0
        self._started_at = 0.0

    def _write(self, runner, phase: str, **extra) -> None:
        if not self.progress_file or not _is_main_process():
            return
        now = time.monotonic()
        cur = runner.iter
        total = runner.max_iters
        done = max(cur - self._iter0, 0)
        elapsed = now - self._t0 if self._t0 else 0.0
        rate = done / elapsed if elapsed > 0 and done else 0.0
        data = dict(
            phase=phase,
            iter=cur,
            max_iters=total,
            epoch=runner.epoch,
            elapsed_s=round(elapsed, 3),
            eta_s=round((total - cur) / rate, 1) if rate else None,
            iters_per_s=round(rate, 4) if rate else None,
            tokens_per_s=round(self._tokens / elapsed, 1) if elapsed > 0 and self._tokens else None,
            started_at=self._started_at,
            updated_at=time.time(),
            pid=os.getpid(),
        )
        data.update(extra)
        atomic_write_json(self.progress_file, data)
        self._last_write = now

    def before_train(self, runner) -> None:
        self._t0 = time.monotonic()
        self._started_at = time.time()
        self._iter0 = runner.iter
        self._write(runner, "training")

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        try:
            ids = data_batch["data"]["input_ids"]
            self._tokens += int(ids.numel())
        except (TypeError, KeyError, AttributeError):
            pass
        if time.monotonic() - self._last_write >= self.min_interval_s:
            # runner.iter is incremented after this hook: report the finished iteration
            self._write(runner, "training", iter=runner.iter + 1)

    def after_train(self, runner) -> None:
        self._write(runner, "stopped" if runner.train_loop.stop_training else "finished")


class StudioStopHook(Hook):
    # after CheckpointHook (VERY_LOW), so a regular save at this iteration is seen
    priority = "LOWEST"

    def __init__(self, stop_file: str | None = None):
        self.stop_file = stop_file

    def _requested(self) -> bool:
        return bool(self.stop_file) and os.path.exists(self.stop_file)

    def before_train(self, runner) -> None:
        if self._requested():
            runner.logger.info("XTuner Studio: stop requested before training started; stopping.")
            runner.train_loop.stop_training = True

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if not self._requested() or runner.train_loop.stop_training:
            return
        step = runner.iter + 1
        ckpt_hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if ckpt_hook is not None:
            last = getattr(ckpt_hook, "last_ckpt", None) or ""
            if not str(last).endswith(ckpt_hook.filename_tmpl.format(step)):
                runner.logger.info(f"XTuner Studio: stop requested; saving checkpoint at {step} iterations")
                ckpt_hook._save_checkpoint(runner)
        runner.logger.info(f"XTuner Studio: stopping after iteration {step} as requested")
        runner.train_loop.stop_training = True

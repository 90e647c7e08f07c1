"""mmengine pieces the generated configs use; imported only inside the training process.

- ``StudioProgressHook`` writes ``progress.json`` (phase, iteration / total, epoch, elapsed, ETA,
  iterations and tokens per second), at most twice a second, from rank 0 only. Phases: ``starting``
  (runner built, checkpoint loading), ``resuming`` (data loader moving to the checkpoint's
  position), ``training``, then ``stopped`` or ``finished``. The file appears with ``starting``:
  from then on a stop request is honoured by the stop hook; before it there is nothing to save.
- ``StudioStopHook`` honours a stop request file at the next iteration boundary: it saves a
  checkpoint for the iteration just finished (unless the regular CheckpointHook just did) and ends
  training cleanly, so a stop loses at most the iteration in flight. Under torchrun every rank must
  stop at the same iteration (saving is collective with DeepSpeed): the ranks agree through one
  ``all_reduce`` of a flag per iteration. A supervisor that died (``XTUNER_STUDIO_SUPERVISOR``:
  its pid and create time, checked at most once a second) counts as a stop request: the trainer
  saves and ends instead of running on unwatched or being killed mid-iteration.
- ``StudioHeldoutHook`` computes the loss on the held-out records at every checkpoint (at the end,
  and where a stop saved one): the mean loss per trained token, written with the visualizer as ``heldout_loss`` (with its
  cost in seconds, ``heldout_s``) into ``scalars.json`` — and TensorBoard — at that iteration.
- ``WarmupLinearLR`` is mmengine's ``LinearLR`` that keeps at least one warmup iteration, where
  ``LinearLR`` raises ``end should be larger than begin`` on short runs.
"""
from __future__ import annotations

import json
import os
import time

from mmengine.hooks import CheckpointHook, Hook
from mmengine.optim.scheduler import LinearLR
from mmengine.optim.scheduler.param_scheduler import INF


class WarmupLinearLR(LinearLR):
    @classmethod
    def build_iter_from_epoch(cls, *args, begin=0, end=INF, by_epoch=True, epoch_length=None, **kwargs):
        assert by_epoch and epoch_length, "WarmupLinearLR converts an epoch-based range to iterations"
        begin = int(begin * epoch_length)
        end = INF if end == INF else max(int(end * epoch_length), begin + 1)
        return cls(*args, begin=begin, end=end, by_epoch=False, **kwargs)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _replace_json(path: str, data: dict) -> None:
    """Write ``path`` atomically (readers see the old or the new file) without an fsync: it is
    rewritten twice a second from the training loop, and a lost update after a crash costs nothing."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, sort_keys=True)
    os.replace(tmp, path)


class StudioProgressHook(Hook):
    priority = "LOW"

    def __init__(self, progress_file: str | None = None, min_interval_s: float = 0.5):
        self.progress_file = progress_file
        self.min_interval_s = min_interval_s
        self._last_write = 0.0
        self._started_at = 0.0  # wall clock of before_train
        self._t0 = 0.0  # monotonic of before_train
        self._t_first = None  # monotonic end of the first iteration of this start: the rate's origin
        self._iter_first = 0
        self._iter0 = 0  # iteration this start began at (the checkpoint's, on resume)
        self._tokens = 0
        self._iters_per_epoch = None

    def _write(self, runner, phase: str, cur: int) -> None:
        if not self.progress_file or _rank() != 0:
            return
        now = time.monotonic()
        total = runner.max_iters
        rate = None
        if self._t_first is not None and cur > self._iter_first and now > self._t_first:
            rate = (cur - self._iter_first) / (now - self._t_first)
        elapsed = now - self._t0 if self._t0 else 0.0
        epoch = None
        if self._iters_per_epoch:
            epoch = min(cur // self._iters_per_epoch + 1, -(-total // self._iters_per_epoch))
        tokens_per_s = None
        if self._tokens and self._t0 and elapsed > 0:
            tokens_per_s = round(self._tokens * _world_size() / elapsed, 1)
        _replace_json(self.progress_file, dict(
            phase=phase,
            iter=cur,
            max_iters=total,
            start_iter=self._iter0,
            epoch=epoch,
            max_epochs=-(-total // self._iters_per_epoch) if self._iters_per_epoch else None,
            elapsed_s=round(elapsed, 3),
            eta_s=round((total - cur) / rate, 1) if rate else None,
            iters_per_s=round(rate, 4) if rate else None,
            tokens_per_s=tokens_per_s,
            started_at=self._started_at or None,
            updated_at=time.time(),
            pid=os.getpid(),
            world_size=_world_size(),
        ))
        self._last_write = now

    def before_run(self, runner) -> None:
        try:
            self._iters_per_epoch = len(runner.train_loop.dataloader) or None
        except (TypeError, AttributeError):
            self._iters_per_epoch = None
        self._write(runner, "starting", runner.iter)

    def before_train(self, runner) -> None:
        self._t0 = time.monotonic()
        self._started_at = time.time()
        self._iter0 = runner.iter
        # a resumed loop first moves the data loader to the checkpoint's position
        self._write(runner, "resuming" if runner.iter else "training", runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        try:
            self._tokens += int(data_batch["data"]["input_ids"].numel())
        except (TypeError, KeyError, AttributeError):
            pass
        done = runner.iter + 1  # runner.iter is incremented after this hook
        if self._t_first is None:
            self._t_first, self._iter_first = time.monotonic(), done
        if time.monotonic() - self._last_write >= self.min_interval_s or done == runner.max_iters:
            self._write(runner, "training", done)

    def after_train(self, runner) -> None:
        self._write(runner, "stopped" if runner.train_loop.stop_training else "finished", runner.iter)


def _supervisor_alive(value: str | None) -> bool:
    """Whether the supervisor named by ``pid:create_time`` still runs (True when none is named)."""
    if not value:
        return True
    import psutil

    try:
        pid, created = value.split(":", 1)
        p = psutil.Process(int(pid))
        return abs(p.create_time() - float(created)) < 0.01 and p.status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.Error):
        return False


class StudioStopHook(Hook):
    # after CheckpointHook (VERY_LOW), so a regular save at this iteration is seen
    priority = "LOWEST"

    def __init__(self, stop_file: str | None = None):
        self.stop_file = stop_file
        from core.jobs import SUPERVISOR_ENV

        self._supervisor = os.environ.get(SUPERVISOR_ENV)
        self._checked_at = 0.0
        self._orphaned = False

    def _supervisor_gone(self) -> bool:
        if not self._orphaned and time.monotonic() - self._checked_at >= 1.0:
            self._checked_at = time.monotonic()
            self._orphaned = not _supervisor_alive(self._supervisor)
        return self._orphaned

    def _requested(self) -> bool:
        asked = (bool(self.stop_file) and os.path.exists(self.stop_file)) or self._supervisor_gone()
        if _world_size() > 1:
            import torch
            from mmengine import dist

            if dist.is_distributed():
                flag = torch.tensor([1 if asked else 0], dtype=torch.int32)
                dist.all_reduce(flag, op="max")  # every rank decides the same, at the same iteration
                asked = bool(flag.item())
        return asked

    def before_train(self, runner) -> None:
        if self._requested():
            runner.logger.info("XTuner Studio: stop requested before training started; stopping.")
            runner.train_loop.stop_training = True

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.train_loop.stop_training or not self._requested():
            return
        step = runner.iter + 1
        if self._orphaned:
            runner.logger.info("XTuner Studio: the job's supervisor is gone; saving and stopping")
        ckpt_hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if ckpt_hook is not None:
            last = getattr(ckpt_hook, "last_ckpt", None) or ""
            if not str(last).endswith(ckpt_hook.filename_tmpl.format(step)):
                runner.logger.info(f"XTuner Studio: stop requested; saving checkpoint at {step} iterations")
                ckpt_hook._save_checkpoint(runner)
        runner.logger.info(f"XTuner Studio: stopping after iteration {step} as requested")
        runner.train_loop.stop_training = True


class StudioHeldoutHook(Hook):
    # after LoggerHook (BELOW_NORMAL): the held-out record follows the training record of its iteration
    priority = "LOW"

    def __init__(self, dataset: dict, interval: int, batch_size: int = 1, per_sample_mask: bool = False):
        self.dataset_cfg = dataset
        self.interval = interval
        self.batch_size = batch_size
        self.per_sample_mask = per_sample_mask  # packed samples kept apart as in training (core.train.packing)
        self._batches = None
        self._last = None  # the iteration last measured
        self._trained = False  # whether this start trained an iteration

    def _build(self) -> list:
        from xtuner.dataset.collate_fns import default_collate_fn
        from xtuner.registry import BUILDER

        from core.train.packing import packed_collate_fn

        collate = packed_collate_fn if self.per_sample_mask else default_collate_fn
        dataset = BUILDER.build(self.dataset_cfg)
        rows = [dataset[i] for i in range(len(dataset))]
        return [collate(rows[i:i + self.batch_size]) for i in range(0, len(rows), self.batch_size)]

    def before_train(self, runner) -> None:
        t0 = time.monotonic()
        self._batches = self._build()
        self._build_s = time.monotonic() - t0
        runner.logger.info(f"XTuner Studio: {len(self._batches)} held-out batches ({self._build_s:.2f} s to prepare)")

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._trained = True
        if self._batches and (self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner)):
            self.evaluate(runner, runner.iter + 1)  # runner.iter is incremented after this hook

    def after_train(self, runner) -> None:
        # a stop saves a checkpoint where the interval did not (StudioStopHook): measure it too
        if self._batches and self._trained and runner.train_loop.stop_training and self._last != runner.iter:
            self.evaluate(runner, runner.iter)

    def evaluate(self, runner, step: int) -> float:
        import torch
        from mmengine.model import is_model_wrapper

        t0 = time.monotonic()
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        was_training = model.training
        model.eval()
        total, tokens = 0.0, 0
        try:
            with torch.no_grad():
                for batch in self._batches:
                    data = model.data_preprocessor(batch, False)
                    loss = model._run_forward(data, mode="loss")["loss"]
                    n = int((data["data"]["labels"][:, 1:] >= 0).sum())  # the tokens the loss is a mean over
                    total += float(loss) * n
                    tokens += n
        finally:
            model.train(was_training)
        value = total / tokens if tokens else float("nan")
        spent = time.monotonic() - t0 + self._build_s
        self._build_s = 0.0  # preparing the batches counts once, towards the first evaluation
        runner.visualizer.add_scalars({"heldout_loss": value, "heldout_s": round(spent, 4)}, step=step)
        runner.logger.info(f"XTuner Studio: held-out loss {value:.4f} at iteration {step} ({spent:.2f} s)")
        self._last = step
        return value

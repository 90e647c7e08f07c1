"""The one way a test waits: poll a condition until it holds or a deadline passes (never a fixed sleep)."""
import time


def wait_for(predicate, timeout: float = 60.0, every: float = 0.05, what: str = "condition not met in time"):
    """Return the first truthy value of ``predicate()``; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(every)

"""Running a function as an RQ worker runs a job, without Redis: ``rq.get_current_job()`` answers it inside."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis import Redis
from rq.job import Job

# Never dialled: creating and performing a job does not talk to Redis.
_NO_REDIS = Redis.from_url("redis://127.0.0.1:1/0")


class _Call:
    """A job's callable that need not be importable by name (a closure, a lambda)."""

    def __init__(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self.func, self.args, self.kwargs = func, args, kwargs

    def __call__(self) -> Any:
        return self.func(*self.args, **self.kwargs)


def run_as_rq_job(job_id: str, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call ``func(*args, **kwargs)`` the way a worker performs the job ``job_id``; returns its result."""
    return Job.create(_Call(func, args, kwargs), id=job_id, connection=_NO_REDIS).perform()

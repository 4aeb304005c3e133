"""Best-model tracking: which validation was the best so far by the first metric of the first
val set, and when ``models/net_g_best.pth`` is to be written again.

Its record (``{'metric', 'value', 'iter'}``) goes into every training state, so a resumed run
keeps comparing against the same best.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional

from lptn.engine.validation import metric_is_better


class BestModelTracker:
    """The best validation so far.

    Args:
        metrics: the ``val.metrics`` blocks by name (their ``better`` says the direction).
        record: a saved ``{'metric', 'value', 'iter'}`` (a resumed run), else none yet.
    """

    def __init__(
        self, metrics: Mapping[str, Dict[str, Any]], record: Optional[Dict[str, Any]] = None
    ) -> None:
        self.metrics = metrics
        self.record: Dict[str, Any] = (
            dict(record) if record else {"metric": None, "value": None, "iter": None}
        )

    @property
    def metric(self) -> Optional[str]:
        """The metric that decides: the first of ``val.metrics`` (None without metrics)."""
        return next(iter(self.metrics), None)

    def offer(self, means: Mapping[str, float], iteration: int) -> bool:
        """Take the mean metrics of a validation at ``iteration``; True when they are the new
        best (the caller saves ``net_g_best.pth``). A missing or NaN value is never best; a
        record of another metric (the option file changed on resume) is replaced."""
        metric = self.metric
        if metric is None:
            return False
        value = means.get(metric)
        if value is None or math.isnan(value):
            return False
        old = self.record.get("value") if self.record.get("metric") == metric else None
        if not metric_is_better(self.metrics[metric], value, old):
            return False
        self.record = {"metric": metric, "value": float(value), "iter": iteration}
        return True


__all__ = ["BestModelTracker"]

"""A mosaik simulator that wraps another and passes every call through: the base of the wrappers that change
one thing about a simulator (:class:`simulators.pacing.Paced`: when its steps start;
:class:`simulators.rates.SlowStepped`: the time it sees)."""

from __future__ import annotations

from typing import Any

import mosaik_api_v3


class Wrapper(mosaik_api_v3.Simulator):
    """Holds an instance of ``inner`` and passes ``init``, ``create``, ``setup_done``, ``step``, ``get_data``,
    ``finalize`` and any extra method (e.g. the recorder's ``kpis()``) through to it; ``warm_up`` too, when the
    inner simulator has one."""

    def __init__(self, inner: type) -> None:
        self._inner = inner()
        super().__init__(self._inner.meta)

    def init(self, sid, time_resolution=1.0, **params):
        meta = self._inner.init(sid, time_resolution=time_resolution, **params)
        self.meta = meta
        return meta

    def create(self, num, model, **model_params):
        return self._inner.create(num, model, **model_params)

    def setup_done(self):
        self._inner.setup_done()

    def warm_up(self):
        warm_up = getattr(self._inner, "warm_up", None)
        if warm_up is not None:
            warm_up()

    def step(self, time, inputs, max_advance):
        return self._inner.step(time, inputs, max_advance)

    def get_data(self, outputs):
        return self._inner.get_data(outputs)

    def finalize(self):
        self._inner.finalize()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)

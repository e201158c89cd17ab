"""Typed errors of the Modbus adapter, each carrying where it happened (address, unit, operation,
register)."""

from __future__ import annotations

from testbed.domain.errors import Fault


class HilError(Exception):
    """Base of adapter errors. ``kind`` is the fault class recorded in results (``timeout``, ``refused``,
    ``disconnected``, ``modbus-exception``, ``invalid-value``, ``abort``)."""

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        address: str = "",
        unit: int | None = None,
        operation: str = "",
        register: int | None = None,
    ) -> None:
        self.address = address
        self.unit = unit
        self.operation = operation
        self.register = register
        where = f"{address} unit {unit}" if address else ""
        what = f" {operation}" if operation else ""
        reg = f" at register {register}" if register is not None else ""
        super().__init__(f"{where}{what}{reg}: {message}" if where or what or reg else message)


class HilConnectionError(HilError):
    """Nothing listens at the address (refused) or the connection dropped."""

    kind = "refused"


class HilDisconnected(HilConnectionError):
    """An established connection dropped during a request."""

    kind = "disconnected"


class HilTimeout(HilError):
    """The device did not answer (connect or request) within the timeout."""

    kind = "timeout"


class HilModbusException(HilError):
    """The device answered with a Modbus exception response (``code``, e.g. 2 = illegal data address)."""

    kind = "modbus-exception"

    def __init__(self, message: str, *, code: int, **context) -> None:
        self.code = code
        super().__init__(f"{message} (Modbus exception code {code})", **context)


class HilValueError(HilError):
    """A register held a "not implemented" sentinel or a value outside the device's physical range."""

    kind = "invalid-value"

    def __init__(self, message: str, *, point: str, value: object, **context) -> None:
        self.point = point
        self.value = value
        super().__init__(message, **context)


class HilAbort(HilError, Fault):
    """The scenario's fault policy is ``abort`` and a device sample was invalid: the run stops with one
    clear paragraph naming the device and the fault (a :class:`testbed.domain.errors.Fault`: exit 3)."""

    kind = "abort"

    def __init__(self, message: str, **context) -> None:
        HilError.__init__(self, message, **context)
        self.summary = f"hardware in the loop: run aborted by the fault policy: {self}"
        self.problems = []

"""A recording target system for tests: every app's tests use this one fake connector.

`RecordingConnector` succeeds (or fails as told), and records each call with its idempotency
key, so a test can assert an external effect happened exactly once. Use the `recording` fixture
(root conftest), or `RecordingConnector.reset()` yourself.
"""

from dataclasses import dataclass
from typing import ClassVar

from accounts.connectors import AccountState, Connector, connector_registry, register_connector


@dataclass(frozen=True)
class Call:
    operation: str
    application: str
    employee_id: int
    idempotency_key: str
    level: str | None = None


class RecordingConnector(Connector):
    """Always answers like a healthy target, unless `fail[operation]` holds an exception to raise."""

    kind = "test-recording"
    calls: ClassVar[list[Call]] = []
    fail: ClassVar[dict[str, BaseException]] = {}

    @classmethod
    def reset(cls) -> None:
        cls.calls.clear()
        cls.fail.clear()

    @classmethod
    def operations(cls, operation: str | None = None) -> list[str]:
        """The operations called so far (only those named `operation`, when given), oldest first."""
        return [call.operation for call in cls.calls if operation in (None, call.operation)]

    def _record(self, operation: str, employee, idempotency_key: str, level: str | None = None) -> None:
        error = self.fail.get(operation)
        if error is not None:
            raise error
        self.calls.append(Call(operation, self.application.name, employee.pk, idempotency_key, level))

    def provision(self, *, employee, level, idempotency_key):
        self._record("provision", employee, idempotency_key, level)
        return AccountState(exists=True, active=True, level=level, external_id=f"acct-{employee.pk}")

    def change_level(self, *, employee, external_id, level, idempotency_key):
        self._record("change_level", employee, idempotency_key, level)
        return AccountState(exists=True, active=True, level=level, external_id=external_id)

    def revoke(self, *, employee, external_id, idempotency_key):
        self._record("revoke", employee, idempotency_key)
        return AccountState(exists=False)

    def disable(self, *, employee, external_id, idempotency_key):
        self._record("disable", employee, idempotency_key)
        return AccountState(exists=True, active=False, external_id=external_id)

    def read_state(self, *, employee, external_id):
        return AccountState(exists=bool(external_id), active=bool(external_id), external_id=external_id)


if RecordingConnector.kind not in connector_registry:
    register_connector(RecordingConnector)

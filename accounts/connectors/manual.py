"""The manual connector: no automation; every operation becomes a task for IT."""

from accounts.connectors.base import AccountState, Connector, ManualActionRequired, register_connector


@register_connector
class ManualConnector(Connector):
    kind = "manual"
    supports_read_state = False

    def _instructions(self, verb: str, employee, level: str | None = None) -> str:
        at = f" at level “{level}”" if level else ""
        kb = f" See {self.application.knowledge_base_url}." if self.application.knowledge_base_url else ""
        return f"{verb} {employee.full_name} ({employee.work_email}) in {self.application.name}{at} by hand.{kb}"

    def provision(self, *, employee, level, idempotency_key):
        raise ManualActionRequired(self._instructions("Create an account for", employee, level))

    def change_level(self, *, employee, external_id, level, idempotency_key):
        raise ManualActionRequired(self._instructions("Change the access of", employee, level))

    def revoke(self, *, employee, external_id, idempotency_key):
        raise ManualActionRequired(self._instructions("Remove the account of", employee))

    def disable(self, *, employee, external_id, idempotency_key):
        raise ManualActionRequired(self._instructions("Disable the account of", employee))

    def read_state(self, *, employee, external_id):
        return AccountState(exists=False)

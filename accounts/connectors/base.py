"""The connector interface every target system implements."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError


class ConnectorError(Exception):
    """The target system refused or could not be reached. The message is the system's own words."""


class ManualActionRequired(Exception):  # noqa: N818 - a signal, not an error
    """No automation for this system: a person must do it. The message says what to do."""


@dataclass(frozen=True)
class AccountState:
    """What the target system says about one person's account for one application."""

    exists: bool
    active: bool = False
    level: str | None = None
    external_id: str = ""


class Connector:
    """Base class. Subclasses set `kind` and implement the five operations.

    `employee` arguments are `accounts.Employee` rows; `external_id` is the account id the
    target gave at provisioning (kept on the entitlement). Each operation returns the
    account's state after acting and must be idempotent for the same `idempotency_key`.
    """

    kind: str = ""

    def __init__(self, application):
        self.application = application
        self.config = application.connector_config or {}

    # --- configuration -------------------------------------------------------------
    @classmethod
    def validate_config(cls, config: dict) -> None:
        """Raise ValidationError naming each missing or malformed setting."""

    def check_connection(self) -> None:
        """Raise ConnectorError with the system's message if it cannot be reached with this config."""

    # --- operations ----------------------------------------------------------------
    def provision(self, *, employee, level: str, idempotency_key: str) -> AccountState:
        raise NotImplementedError

    def change_level(self, *, employee, external_id: str, level: str, idempotency_key: str) -> AccountState:
        raise NotImplementedError

    def revoke(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        raise NotImplementedError

    def disable(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        raise NotImplementedError

    def read_state(self, *, employee, external_id: str) -> AccountState:
        raise NotImplementedError


connector_registry: dict[str, type[Connector]] = {}


def register_connector(cls: type[Connector]) -> type[Connector]:
    connector_registry[cls.kind] = cls
    return cls


def connector_for(application) -> Connector:
    try:
        cls = connector_registry[application.connector]
    except KeyError:
        raise ValidationError(
            f"{application.name} uses connector {application.connector!r}, which Portal does not have."
        ) from None
    return cls(application)

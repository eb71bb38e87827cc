"""The connector interface every target system implements."""

import os
from dataclasses import dataclass

from django.core.exceptions import ValidationError


class ConnectorError(Exception):
    """The target system refused or could not be reached. The message is the system's own words.

    `retryable` is False when trying again without a change (of config or data) cannot help,
    e.g. the target rejected the request as malformed; True for outages and timeouts.
    """

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


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
    # Config keys holding secrets: masked in the admin, never logged. Each may instead be given
    # as `<key>_env`, the name of an environment variable holding it (kept out of the database).
    secret_fields: tuple[str, ...] = ()
    # False: `read_state` cannot ask the target and says only what it knows (see the subclass).
    supports_read_state: bool = True
    # True: `forget` erases what the target keeps about a person (asked by the retention purge).
    # False (the default, and the manual connector): the purge asks nothing of this target.
    supports_forget: bool = False
    # Shown in the admin as an example of `connector_config`.
    example_config: dict = {}

    def __init__(self, application):
        self.application = application
        self.config = application.connector_config or {}

    # --- configuration -------------------------------------------------------------
    @classmethod
    def validate_config(cls, config: dict, *, access_levels: list[str] | None = None) -> None:
        """Raise ValidationError naming each missing or malformed setting.

        `access_levels`, when given, are the application's levels, for connectors that map them.
        """
        if not isinstance(config, dict):
            raise ValidationError("The connector configuration must be a JSON object.")

    def require_valid_config(self) -> None:
        """Raise ConnectorError (not retryable) naming each bad setting, before any call to the target."""
        try:
            self.validate_config(self.config)
        except ValidationError as exc:
            problems = " ".join(exc.messages)
            raise ConnectorError(
                f"{self.application.name}: the {self.kind} connector config is not valid: {problems}", retryable=False
            ) from None

    def secret(self, key: str) -> str:
        """The secret setting `key`, from the config or from the environment variable `<key>_env` names."""
        if self.config.get(key):
            return str(self.config[key])
        variable = self.config.get(f"{key}_env")
        if variable:
            value = os.environ.get(str(variable), "")
            if not value:
                raise ConnectorError(f"Environment variable {variable} (for {key}) is not set.", retryable=False)
            return value
        raise ConnectorError(f"{key} is not configured.", retryable=False)

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

    def forget(self, *, employee, external_id: str, idempotency_key: str) -> AccountState:
        """Erase the person's account data in the target, after Portal's retention purge.

        `employee` is already anonymised: identify the account by `employee.employee_number` and
        `external_id`, never by name or email. Idempotent: an account the target no longer has is
        forgotten already. Only for connectors with `supports_forget`.
        """
        raise NotImplementedError(f"The {self.kind} connector cannot forget a person.")


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


# --- helpers for validate_config ------------------------------------------------------------
def missing_setting(key: str, meaning: str) -> ValidationError:
    return ValidationError(f"“{key}” is missing: {meaning}.", code="required")


def bad_setting(key: str, reason: str) -> ValidationError:
    return ValidationError(f"“{key}” {reason}", code="invalid")


def check_secret_setting(config: dict, key: str, meaning: str) -> list[ValidationError]:
    """Errors for a secret given as `key` (the value) or `<key>_env` (an environment variable's name)."""
    value, variable = config.get(key), config.get(f"{key}_env")
    if value and variable:
        return [bad_setting(key, f"and “{key}_env” are both set; give one.")]
    if value:
        return [] if isinstance(value, str) else [bad_setting(key, "must be a string.")]
    if variable:
        if not isinstance(variable, str):
            return [bad_setting(f"{key}_env", "must be the name of an environment variable.")]
        return [] if os.environ.get(variable) else [bad_setting(f"{key}_env", f"names {variable}, which is not set.")]
    return [missing_setting(key, f"{meaning} (or “{key}_env”, the environment variable holding it)")]


def check_timeout_setting(config: dict) -> list[ValidationError]:
    timeout = config.get("timeout")
    if timeout is None:
        return []
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
        return [bad_setting("timeout", "must be a number of seconds between 0 and 300.")]
    return []


# --- secrets in forms -----------------------------------------------------------------------
SECRET_MASK = "********"


def mask_secrets(kind: str, config) -> dict:
    """`config` with the connector's secret settings replaced by SECRET_MASK, for display."""
    if not isinstance(config, dict):
        return config
    secret_fields = getattr(connector_registry.get(kind), "secret_fields", ())
    return {key: SECRET_MASK if key in secret_fields and value else value for key, value in config.items()}


def restore_secrets(kind: str, config, stored) -> tuple[dict, list[str]]:
    """`config` with each SECRET_MASK put back to the stored secret; also the keys that had none to restore."""
    if not isinstance(config, dict):
        return config, []
    stored = stored if isinstance(stored, dict) else {}
    secret_fields = getattr(connector_registry.get(kind), "secret_fields", ())
    restored, lost = dict(config), []
    for key in secret_fields:
        if restored.get(key) == SECRET_MASK:
            if stored.get(key):
                restored[key] = stored[key]
            else:
                lost.append(key)
    return restored, lost

"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), counting every command and message it receives.

    from portal.testing.smtp_server import SmtpServer

    with SmtpServer() as smtp:                 # an asyncio SMTP server on a free 127.0.0.1 port, in a thread
        smtp.django_settings()                 # EMAIL_BACKEND (Django's SMTP backend), EMAIL_HOST, EMAIL_PORT
        ...                                    # send through portal.mail
        smtp.messages    # every message the server accepted (ReceivedMessage: sender, recipients, parsed message)
        smtp.commands    # every MAIL, RCPT and DATA command received, in order, e.g. ["MAIL", "RCPT", "DATA"]
        smtp.hold("DATA")       # once a whole message is received (and counted), wait before answering 250 ...
        smtp.wait_held("DATA")  # ... block until a client is held there ...
        smtp.release()          # ... and let every held answer go
        smtp.hold("RCPT", times=1)  # the same before answering the next recipient only (nothing delivered yet)
        smtp.refuse("RCPT", "550 5.1.1 No such user")   # answer every RCPT (or "MAIL", "DATA") so
        smtp.behave()                                   # ... until this

A held DATA answer models the window a client cannot see into: the server has the message (it is
in `messages`, as a real server that has queued it would deliver it) but the client has not heard
"250" yet. A client killed there and then sending again produces a second entry in `messages`.

pytest: `portal/tests/conftest.py` has an `smtp_server` fixture (a fresh server per test).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP

STAGES = ("MAIL", "RCPT", "DATA")


@dataclass
class ReceivedMessage:
    """One message the server accepted, as received."""

    sender: str
    recipients: list[str]
    content: bytes
    received_at: float = field(default_factory=time.time)

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"] or "")

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        self.server._count("MAIL")
        refusal = self.server._refusals.get("MAIL")
        if refusal:
            return refusal
        await self.server._stage("MAIL")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        self.server._count("RCPT")
        refusal = self.server._refusals.get("RCPT")
        if refusal:
            return refusal
        await self.server._stage("RCPT")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope):
        self.server._count("DATA")
        refusal = self.server._refusals.get("DATA")
        if refusal:
            return refusal
        with self.server._lock:
            self.server.messages.append(
                ReceivedMessage(sender=envelope.mail_from, recipients=list(envelope.rcpt_tos), content=envelope.content)
            )
        await self.server._stage("DATA")
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on 127.0.0.1 (a free port) in a background thread; a context manager. See the module."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = 0
        self.messages: list[ReceivedMessage] = []
        self.commands: list[str] = []
        self._lock = threading.Lock()
        self._holds: dict[str, int | None] = {}  # stage -> answers left to hold (None: all)
        self._release = threading.Event()
        self._held: dict[str, int] = {}
        self._refusals: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ----------------------------------------------------------------------
    def __enter__(self) -> SmtpServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    loop.create_server(
                        lambda: SMTP(_Handler(self), hostname="portal-test-smtp", loop=loop), self.host, 0
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="smtp-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("The test SMTP server did not start within 10 s.")
        if failure:
            raise failure[0]
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def django_settings(self, settings=None) -> dict:
        """The Django settings that send to this server; applied to `settings` (pytest-django's) when given."""
        values = {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": self.host,
            "EMAIL_PORT": self.port,
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
        }
        if settings is not None:
            for name, value in values.items():
                setattr(settings, name, value)
        return values

    def env(self) -> dict[str, str]:
        """The same as environment variables, for a worker process (`portal.testing.worker.QCluster(env=...)`)."""
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": self.host,
            "EMAIL_PORT": str(self.port),
        }

    # --- misbehaving on request -------------------------------------------------------------
    def hold(self, stage: str, *, times: int | None = None) -> None:
        """Hold the answers at `stage` ("MAIL", "RCPT" or "DATA") until `release()`: every one, or the next `times`."""
        if stage not in STAGES:
            raise ValueError(f"Hold one of {', '.join(STAGES)}, not {stage!r}.")
        self._release.clear()
        self._holds[stage] = times

    def release(self) -> None:
        """Answer every held client and hold no more."""
        self._holds.clear()
        self._release.set()

    def held(self, stage: str) -> int:
        """How many clients have been held at `stage` so far."""
        return self._held.get(stage, 0)

    def wait_held(self, stage: str, *, count: int = 1, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.held(stage) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"No client was held at {stage} within {timeout} s (commands: {self.commands}).")
            time.sleep(0.02)

    def refuse(self, stage: str, answer: str) -> None:
        """Answer every `stage` command with `answer` (e.g. "550 5.1.1 No such user") until `behave()`."""
        if stage not in STAGES:
            raise ValueError(f"Refuse one of {', '.join(STAGES)}, not {stage!r}.")
        self._refusals[stage] = answer

    def behave(self) -> None:
        self._refusals.clear()

    # --- inside the server's loop -----------------------------------------------------------
    def _count(self, stage: str) -> None:
        with self._lock:
            self.commands.append(stage)

    async def _stage(self, stage: str) -> None:
        with self._lock:
            if stage not in self._holds or self._holds[stage] == 0:
                return
            if self._holds[stage] is not None:
                self._holds[stage] -= 1
            self._held[stage] = self._held.get(stage, 0) + 1
        while not self._release.is_set():
            await asyncio.sleep(0.01)

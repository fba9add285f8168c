"""Email over SMTP: STARTTLS, implicit TLS or plain, with an optional login.

Each alert is one multipart message: a plain-text body for terminals and filters, an HTML
alternative for mail clients. SMTP reply codes decide retries: 4xx means "try later",
5xx means "this will never work" (bad password, unknown recipient). The alert arrives
already redacted (`tasks.notify.send` does it once for every channel).
"""

from __future__ import annotations

import html
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from tasks.notify.transports import TransportError, certificate_rejected
from vigil.alert import Alert
from vigil.config import EmailChannel

log = logging.getLogger("vigil.notify")


def deliver(channel: EmailChannel, alert: Alert) -> None:
    """Send `alert` once; raise TransportError saying whether a retry could help."""
    message = build_message(channel, alert)
    try:
        with _connect(channel) as smtp:
            if channel.security == "starttls":
                smtp.starttls(context=_tls_context(channel))
            if channel.username:
                smtp.login(channel.username, channel.password or "")
            refused = smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise _failure(exc) from exc
    if refused:
        # Some recipients got it: retrying would send them a duplicate, so only report it.
        log.warning("email %r: some recipients refused: %s", message["Subject"], _refused(refused))


def _connect(channel: EmailChannel) -> smtplib.SMTP:
    timeout = channel.timeout.total_seconds()
    port = channel.effective_port
    if channel.security == "ssl":
        context = _tls_context(channel)
        return smtplib.SMTP_SSL(channel.host, port, timeout=timeout, context=context)
    return smtplib.SMTP(channel.host, port, timeout=timeout)


def _tls_context(channel: EmailChannel) -> ssl.SSLContext:
    """Verified by default; `verify_tls: false` is for internal relays with their own CA."""
    context = ssl.create_default_context()
    if not channel.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _failure(exc: smtplib.SMTPException | OSError) -> TransportError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        permanent = any(code >= 500 for code in codes)
        return TransportError(f"all recipients refused: {_refused(exc.recipients)}", permanent)
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        return TransportError(f"SMTP {code}: {_text(exc.smtp_error)}", permanent=code >= 500)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransportError(f"SMTP server disconnected: {exc}")
    if certificate_rejected(exc):
        return TransportError(f"TLS certificate rejected: {exc}", permanent=True)
    if isinstance(exc, smtplib.SMTPException):
        # What is left is a capability the server lacks (STARTTLS, AUTH): config, not luck.
        return TransportError(f"SMTP: {exc}", permanent=True)
    return TransportError(f"cannot reach SMTP server: {exc}")


def _refused(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{addr} ({code} {_text(text)})" for addr, (code, text) in recipients.items())


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


# --- the message -------------------------------------------------------------------------


def build_message(channel: EmailChannel, alert: Alert) -> EmailMessage:
    message = EmailMessage()
    # Header values cannot hold line breaks; a multi-line title would make the send fail.
    title = " ".join(alert.title.split())
    message["Subject"] = f"[vigil][{alert.severity.upper()}] {title}"
    message["From"] = channel.from_addr
    message["To"] = ", ".join(channel.to)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=_domain(channel.from_addr))
    message.set_content(alert.plain_text())
    message.add_alternative(alert.html or _html(alert), subtype="html")
    return message


def _domain(address: str) -> str | None:
    """Message-IDs from the sender's own domain avoid a slow local FQDN lookup."""
    _, addr = parseaddr(address)
    return addr.rpartition("@")[2] or None


def _html(alert: Alert) -> str:
    """Inline styles only: most mail clients drop <style> blocks."""
    esc = html.escape
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{esc(label)}</th>'
        f"<td>{esc(value)}</td></tr>"
        for label, value in alert.facts()
    )
    parts = [
        f"<h2>{esc(alert.headline())}</h2>",
        f"<p>{esc(alert.summary)}</p>",
        f"<table>{rows}</table>",
    ]
    if alert.details:
        items = "".join(f"<li><code>{esc(line)}</code></li>" for line in alert.details)
        parts.append(f"<ul>{items}</ul>")
    if alert.flow_run_url:
        parts.append(f'<p><a href="{esc(alert.flow_run_url)}">View flow run</a></p>')
    return f"<html><body>{''.join(parts)}</body></html>"

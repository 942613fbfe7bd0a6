"""The local stack's mail catcher: alert emails land in a Maildir and on a small web page.

    python -m medallion.local.mailsink serve MAILDIR SMTP_PORT WEB_PORT   # what `localstack mail start` runs

An SMTP server (aiosmtpd, a dev dependency) on 127.0.0.1:SMTP_PORT accepts every message and adds
it to MAILDIR (any mail client opens it: `mutt -f .local/mail`); http://127.0.0.1:WEB_PORT/ lists the
messages newest first, each one readable as sent (text part, HTML part below it). Local use only: it
relays nothing and has no authentication. Docker uses Mailpit for the same purpose.
"""

from __future__ import annotations

import html
import mailbox
import signal
import sys
import threading
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class MaildirHandler:
    """aiosmtpd handler: every accepted message is added to the Maildir."""

    def __init__(self, maildir: Path):
        self.box = mailbox.Maildir(maildir, create=True)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.box.add(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def _messages(maildir: Path) -> list[tuple[str, object]]:
    box = mailbox.Maildir(maildir, create=False)
    parse = BytesParser(policy=policy.default).parsebytes
    msgs = [(key, parse(box.get_bytes(key))) for key in box.keys()]

    def sent(item) -> float:
        try:
            return parsedate_to_datetime(item[1]["date"]).timestamp()
        except (TypeError, ValueError):
            return 0.0

    return sorted(msgs, key=sent, reverse=True)


PAGE = """<!doctype html><meta charset="utf-8"><title>{title}</title>
<style>body{{font:14px sans-serif;margin:2em}}td{{padding:.3em .8em;border-bottom:1px solid #ddd}}
pre{{white-space:pre-wrap;background:#f6f6f6;padding:1em}}</style><h1>{title}</h1>{body}"""


class WebHandler(BaseHTTPRequestHandler):
    maildir: Path

    def do_GET(self):  # noqa: N802 - http.server's hook name
        msgs = dict(_messages(self.maildir))
        key = self.path.strip("/")
        if not key:
            rows = "".join(
                f"<tr><td>{html.escape(str(m['date'] or ''))}</td><td>{html.escape(str(m['to'] or ''))}</td>"
                f'<td><a href="/{html.escape(k)}">{html.escape(str(m["subject"] or "(no subject)"))}</a></td></tr>'
                for k, m in msgs.items()
            )
            body = f"<p>{len(msgs)} message(s) in {html.escape(str(self.maildir))}</p><table>{rows}</table>"
            return self._send(200, PAGE.format(title="Local mailbox", body=body))
        if key not in msgs:
            return self._send(404, PAGE.format(title="Not found", body='<a href="/">all messages</a>'))
        msg = msgs[key]
        text = msg.get_body(preferencelist=("plain",))
        rich = msg.get_body(preferencelist=("html",))
        body = "".join([
            f"<p><b>To</b> {html.escape(str(msg['to']))} &middot; <b>Date</b> {html.escape(str(msg['date']))}"
            ' &middot; <a href="/">all messages</a></p>',
            f"<pre>{html.escape(text.get_content())}</pre>" if text else "",
            f"<hr>{rich.get_content()}" if rich else "",  # our own alert HTML, shown as sent
        ])  # fmt: skip
        return self._send(200, PAGE.format(title=html.escape(str(msg["subject"])), body=body))

    def _send(self, status: int, page: str) -> None:
        data = page.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # quiet: one line per page view is noise
        pass


def serve(maildir: Path, smtp_port: int, web_port: int) -> None:
    """Run the SMTP server and the web page until SIGTERM/SIGINT."""
    from aiosmtpd.controller import Controller

    maildir.parent.mkdir(parents=True, exist_ok=True)  # the Maildir itself (new/, cur/, tmp/) by mailbox
    smtp = Controller(MaildirHandler(maildir), hostname="127.0.0.1", port=smtp_port)
    handler = type("Handler", (WebHandler,), {"maildir": maildir})
    web = ThreadingHTTPServer(("127.0.0.1", web_port), handler)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    smtp.start()
    threading.Thread(target=web.serve_forever, daemon=True).start()
    print(f"mail sink: SMTP 127.0.0.1:{smtp_port}, web http://127.0.0.1:{web_port}/, Maildir {maildir}", flush=True)
    stop.wait()
    web.shutdown()
    smtp.stop()


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "serve":
        sys.exit(__doc__)
    serve(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))

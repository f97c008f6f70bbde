#!/usr/bin/env python3
"""A real SMTP server for the notify integration tests (tests/notify.rs).

Listens on 127.0.0.1 with aiosmtpd and writes every accepted message to
--dir, one file per message (written to a temporary name, then renamed, so a
reader never sees half a file). Each file starts with X-Test-* lines giving
the envelope and the login, then the message as received.

Options: --starttls CERT KEY (STARTTLS required), --tls CERT KEY (implicit
TLS), --auth USER PASSWORD (AUTH required), --delay SECONDS (before answering
the end of DATA), --reject WORD (answer 554 to a message containing WORD),
--hang (send the 220 greeting, then never answer anything), --trickle (send
a greeting that never ends, one byte every 0.2 s).

The port: --port PORT, or by default 0, a port the kernel picks, so that no
other test can take it between choosing and binding. --reuse-port joins a
port that the test holds reserved (bound, never listening, with
SO_REUSEPORT) for a server that is down, then up.

Prints "READY PORT" on stdout once it accepts connections. Runs until killed.
"""

import argparse
import os
import socket
import ssl
import sys
import threading
import time
import warnings

# aiosmtpd 1.4 warns about its own use of a deprecated attribute on every login.
warnings.filterwarnings("ignore", message="Session.login_data")


def listening_socket(args):
    """Bound to 127.0.0.1 on --port (0: any free port) and listening."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.reuse_port:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(16)
    return listener


def hang(args):
    listener = listening_socket(args)
    held = []
    trickle = args.trickle
    print("READY %d" % listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        if trickle:
            threading.Thread(target=drip, args=(conn,), daemon=True).start()
        else:
            conn.sendall(b"220 hang.test ESMTP then silence\r\n")
        held.append(conn)  # keep it open, never read, never answer


def drip(conn):
    """A greeting that never ends: one byte every 0.2 s, no newline."""
    try:
        conn.sendall(b"220 ")
        while True:
            time.sleep(0.2)
            conn.sendall(b"x")
    except OSError:
        pass


def serve(args):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    counter = [0]
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            text = envelope.content.decode("utf-8", "replace") if isinstance(envelope.content, bytes) else envelope.content
            if args.reject and args.reject in text:
                return "554 5.6.0 refused by the test server"
            if args.delay:
                time.sleep(args.delay)  # blocks the loop on purpose: a slow server
            with lock:
                counter[0] += 1
                n = counter[0]
            name = "%020d-%06d.eml" % (time.time_ns(), n)
            login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else ""
            head = "X-Test-Mail-From: %s\nX-Test-Rcpt-To: %s\nX-Test-Login: %s\nX-Test-TLS: %s\n" % (
                envelope.mail_from,
                " ".join(envelope.rcpt_tos),
                login,
                "yes" if session.ssl else "no",
            )
            content = envelope.content
            if isinstance(content, bytes):
                content = content.decode("utf-8", "replace")
            tmp = os.path.join(args.dir, "." + name)
            with open(tmp, "w") as f:
                f.write(head + content.replace("\r\n", "\n"))
            os.rename(tmp, os.path.join(args.dir, name))
            return "250 2.0.0 queued as %d" % n

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.auth[0]
            and auth_data.password.decode() == args.auth[1]
        )
        # handled=False: let aiosmtpd answer 535 on failure.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    kwargs = {}
    if args.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.starttls[0], args.starttls[1])
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        kwargs.update(ssl_context=ctx)
    if args.auth:
        kwargs.update(authenticator=authenticator, auth_required=True)
        if not (args.starttls or args.tls):
            kwargs.update(auth_require_tls=False)
    listener = listening_socket(args)
    port = listener.getsockname()[1]

    class OnOurSocket(Controller):
        """aiosmtpd's Controller, serving on the socket bound above."""

        def _create_server(self):
            return self.loop.create_server(
                self._factory_invoker, sock=listener, ssl=self.ssl_context
            )

    controller = OnOurSocket(Handler(), hostname="127.0.0.1", port=port, **kwargs)
    if args.tls:
        # aiosmtpd's readiness probe would wrap its socket with our server-side
        # context; probe as a client that does not verify instead.
        def trigger():
            client = ssl.create_default_context()
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
            with socket.create_connection(("127.0.0.1", port), 2.0) as raw:
                with client.wrap_socket(raw) as tls:
                    tls.recv(1024)

        controller._trigger_server = trigger
    controller.start()
    print("READY %d" % port, flush=True)
    while True:
        time.sleep(3600)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--reuse-port", action="store_true")
    p.add_argument("--dir")
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth", nargs=2, metavar=("USER", "PASSWORD"))
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--hang", action="store_true")
    p.add_argument("--trickle", action="store_true")
    p.add_argument("--reject", metavar="WORD")
    args = p.parse_args()
    if args.hang or args.trickle:
        hang(args)
    else:
        if not args.dir:
            sys.exit("--dir is required")
        serve(args)


if __name__ == "__main__":
    main()

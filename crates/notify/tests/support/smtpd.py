"""A real SMTP server for certkeeper-notify's tests: aiosmtpd (Debian's python3-aiosmtpd).

usage: smtpd.py PORT MODE CERT KEY USER PASSWORD OUTDIR
MODE is starttls (STARTTLS required), implicit (TLS from the first byte) or none.
Logins: AUTH PLAIN and LOGIN with USER/PASSWORD; required unless USER is "-".
Each message received is written to OUTDIR/N.json (mail_from, rcpt_tos, data, login).
Prints READY once it accepts connections; runs until killed.
"""
import json
import logging
import os
import ssl
import sys
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

# The "none" mode's AUTH without TLS is what it tests; aiosmtpd's warning about it is noise.
warnings.simplefilter("ignore")
logging.disable(logging.WARNING)

port, mode, cert, key, user, password, outdir = sys.argv[1:8]
count = 0


class Handler:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        login = session.auth_data.login.decode() if session.auth_data else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "login": login,
            "tls": session.ssl is not None
            or server.transport.get_extra_info("sslcontext") is not None,
        }
        path = os.path.join(outdir, "%d.json" % count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login.decode() == user and auth_data.password.decode() == password
    # handled=False: aiosmtpd then answers "535 5.7.8" itself.
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
kwargs = dict(authenticator=authenticator, auth_required=user != "-",
              auth_require_tls=mode != "none")
if mode == "starttls":
    controller = Controller(Handler(), hostname="127.0.0.1", port=int(port),
                            tls_context=context, require_starttls=True, **kwargs)
elif mode == "implicit":
    controller = Controller(Handler(), hostname="127.0.0.1", port=int(port),
                            ssl_context=context, server_hostname="localhost", **kwargs)
else:
    controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), **kwargs)
controller.start()
print("READY", flush=True)
while True:
    time.sleep(3600)

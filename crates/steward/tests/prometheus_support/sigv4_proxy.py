"""A SigV4-checking gateway in front of a Prometheus, as Amazon Managed Service for
Prometheus checks a query: the signature is computed again with botocore (AWS's own
Python implementation, not steward's Rust signer) from the request's signed headers
and the secret key, and compared. A mismatch, a missing or stale signature, another
access key, region or service, or a missing session token is a 403; a good query is
forwarded to the upstream Prometheus.

Usage: sigv4_proxy.py REGION SERVICE UPSTREAM; credentials in SIGV4_ACCESS_KEY,
SIGV4_SECRET_KEY and (optional) SIGV4_TOKEN. Prints the port it listens on."""

import datetime
import http.server
import os
import sys
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION, SERVICE, UPSTREAM = sys.argv[1:4]
CREDS = Credentials(os.environ["SIGV4_ACCESS_KEY"], os.environ["SIGV4_SECRET_KEY"],
                    os.environ.get("SIGV4_TOKEN") or None)


def refusal(headers, path):
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    key, day, region, service, _ = fields["Credential"].split("/")
    if (key, region, service) != (CREDS.access_key, REGION, SERVICE):
        return f"credential scope {key}/{region}/{service}"
    stamp = headers.get("X-Amz-Date", "")
    at = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if abs((datetime.datetime.now(datetime.timezone.utc) - at).total_seconds()) > 300 or day != stamp[:8]:
        return "stale or inconsistent X-Amz-Date"
    if CREDS.token and headers.get("X-Amz-Security-Token") != CREDS.token:
        return "missing session token"
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed"
    req = AWSRequest(method="GET", url="http://" + headers["Host"] + path,
                     headers={h: headers[h] for h in signed})
    req.context["timestamp"] = stamp
    signer = SigV4Auth(CREDS, SERVICE, REGION)
    want = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    return None if want == fields["Signature"] else "signature mismatch"


class Gateway(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            why = refusal(self.headers, self.path)
        except (KeyError, ValueError) as e:
            why = f"malformed: {e!r}"
        if why:
            body = why.encode()
            self.send_response(403)
        else:
            with urllib.request.urlopen(UPSTREAM + self.path) as up:
                body = up.read()
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
print(server.server_address[1], flush=True)
server.serve_forever()

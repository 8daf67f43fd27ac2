"""Runs the PyPI packages `stripe` and `standardwebhooks` for tests/interop_python.rs.

Reads one JSON object from stdin, {"cases": [...]}, and writes one to stdout:
{"versions": {...}, "results": [...]}, one result per case, in order.

Cases:
  {"op": "stripe_verify", "payload", "header", "secret", "tolerance"}
      -> {"ok": true} or {"ok": false, "error": "..."}
  {"op": "standardwebhooks_verify", "secret", "payload", "headers": {name: value}}
      -> {"ok": true} or {"ok": false, "error": "..."}
  {"op": "stripe_sign", "payload", "secret", "timestamp"}
      -> {"header": "t=...,v1=..."}
  {"op": "standardwebhooks_sign", "secret", "msg_id", "timestamp", "payload"}
      -> {"signature": "v1,..."}

Payloads are text (both libraries sign the UTF-8 encoding of a str). Verification uses the
libraries' own clocks, so the Rust side signs with the current time.
"""

import json
import sys
from datetime import datetime, timezone
from importlib.metadata import version

import standardwebhooks
import stripe


def stripe_verify(case):
    try:
        stripe.WebhookSignature.verify_header(
            case["payload"], case["header"], case["secret"], case["tolerance"]
        )
    except stripe.SignatureVerificationError as err:
        return {"ok": False, "error": str(err)}
    return {"ok": True}


def standardwebhooks_verify(case):
    try:
        standardwebhooks.Webhook(case["secret"]).verify(case["payload"], case["headers"])
    except standardwebhooks.WebhookVerificationError as err:
        return {"ok": False, "error": str(err)}
    return {"ok": True}


def stripe_sign(case):
    header = stripe.WebhookSignature.generate_signature_header(
        case["payload"], case["secret"], timestamp=case["timestamp"]
    )
    return {"header": header}


def standardwebhooks_sign(case):
    at = datetime.fromtimestamp(case["timestamp"], tz=timezone.utc)
    signature = standardwebhooks.Webhook(case["secret"]).sign(case["msg_id"], at, case["payload"])
    return {"signature": signature}


OPS = {
    "stripe_verify": stripe_verify,
    "standardwebhooks_verify": standardwebhooks_verify,
    "stripe_sign": stripe_sign,
    "standardwebhooks_sign": standardwebhooks_sign,
}


def main():
    request = json.load(sys.stdin)
    results = [OPS[case["op"]](case) for case in request["cases"]]
    json.dump(
        {
            "versions": {
                "python": sys.version.split()[0],
                "stripe": version("stripe"),
                "standardwebhooks": version("standardwebhooks"),
            },
            "results": results,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

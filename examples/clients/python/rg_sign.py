#!/usr/bin/env python3
"""Sign and send a request with replayguard's hmac scheme (RG1-HMAC-SHA256).

Standard library only. Usage:

    rg_sign.py --key-id ID --secret SECRET [--idempotency-key K] \
        -X METHOD [-d BODY | --data-file FILE] [-H 'Name: value'] \
        [--print-headers] URL

Without --print-headers the request is sent and "<status>\\n<body>" printed.
With --print-headers the four signing headers (and Idempotency-Key when
given) are printed as "Name: value" lines and nothing is sent. A secret written "base64:<std base64>" is decoded.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ALGORITHM = "RG1-HMAC-SHA256"


def parse_secret(value):
    """Return the secret's bytes: "base64:..." is decoded, else UTF-8."""
    if value.startswith("base64:"):
        try:
            raw = base64.b64decode(value[len("base64:"):], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("secret: invalid base64") from exc
    else:
        raw = value.encode("utf-8")
    if not raw:
        raise ValueError("secret: empty")
    return raw


def split_url(url):
    """Return (url to send, host, request-target) for an http(s) URL.

    The URL sent is rebuilt from the signed parts so that the request-target
    on the wire is exactly the one signed.
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]  # the Host header has no userinfo
    if parts.scheme not in ("http", "https") or not netloc:
        raise ValueError("URL must be http:// or https:// with a host")
    path = parts.path or "/"
    target = path + ("?" + parts.query if parts.query else "")
    send = "%s://%s%s" % (parts.scheme, netloc, target)
    return send, netloc.lower(), target


def string_to_sign(method, host, target, timestamp, nonce, idempotency_key, body):
    return "\n".join([
        ALGORITHM,
        method,
        host.lower(),
        target,
        timestamp,
        nonce,
        idempotency_key,
        hashlib.sha256(body).hexdigest(),
    ])


def sign(key_id, secret, method, host, target, body, idempotency_key="",
         timestamp=None, nonce=None):
    """Return the signing headers as a list of (name, value) pairs."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    nonce = str(uuid.uuid4()) if nonce is None else nonce
    sts = string_to_sign(method, host, target, timestamp, nonce, idempotency_key, body)
    mac = hmac.new(secret, sts.encode("utf-8"), hashlib.sha256).digest()
    headers = [
        ("X-Key-Id", key_id),
        ("X-Timestamp", timestamp),
        ("X-Nonce", nonce),
        ("X-Signature", "v1=" + base64.b64encode(mac).decode("ascii")),
    ]
    if idempotency_key:
        headers.append(("Idempotency-Key", idempotency_key))
    return headers


def main(argv=None):
    p = argparse.ArgumentParser(description="Sign a request for replayguard (hmac scheme).")
    p.add_argument("--key-id", required=True)
    p.add_argument("--secret", required=True, help='plain string, or "base64:<std base64>"')
    p.add_argument("--idempotency-key", default="")
    p.add_argument("-X", "--request", dest="method", default="GET")
    body = p.add_mutually_exclusive_group()
    body.add_argument("-d", "--data", help="request body")
    body.add_argument("--data-file", help="file holding the request body")
    p.add_argument("-H", "--header", action="append", default=[],
                   help="extra unsigned header, 'Name: value' (repeatable)")
    p.add_argument("--print-headers", action="store_true",
                   help="print the headers instead of sending the request")
    p.add_argument("url")
    args = p.parse_args(argv)
    # The method is signed byte for byte as sent: send it upper-cased, as
    # HTTP clients do, and sign what is sent.
    args.method = args.method.upper()

    try:
        secret = parse_secret(args.secret)
        send_url, host, target = split_url(args.url)
    except ValueError as exc:
        p.error(str(exc))
    extra = []
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            p.error("header %r is not 'Name: value'" % h)
        extra.append((name.strip(), value.strip()))
    if args.data_file is not None:
        with open(args.data_file, "rb") as f:
            data = f.read()
    elif args.data is not None:
        data = args.data.encode("utf-8", "surrogateescape")
    else:
        data = b""

    headers = sign(args.key_id, secret, args.method, host, target, data, args.idempotency_key)
    if args.print_headers:
        for name, value in headers:
            print("%s: %s" % (name, value))
        return 0

    req = urllib.request.Request(send_url, data=data if data else None,
                                 headers=dict(extra + headers), method=args.method)
    try:
        with urllib.request.urlopen(req) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    except urllib.error.URLError as exc:
        print("rg_sign: %s" % exc.reason, file=sys.stderr)
        return 1
    sys.stdout.write("%d\n" % status)
    sys.stdout.flush()
    sys.stdout.buffer.write(payload)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

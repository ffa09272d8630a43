#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fault-injecting HTTP proxy for ferry's integration tests (Python 3 stdlib only).

Listens on 127.0.0.1:PORT and forwards every request unchanged (Host header
included, so SigV4 signatures stay valid) to one upstream S3 server over http.
A plan, set per test, makes it misbehave for the first N requests that match a
rule, then pass through again. Every request is logged (JSON lines) so a test
can assert how many attempts the client made.

Start:
  faultproxy.py --upstream http://127.0.0.1:9000 [--port 0] --port-file F
                [--log F] [--plan F] [--parent-pid PID] [--max-seconds 900]

Control (same port, path prefix /__faultproxy/):
  PUT  /__faultproxy/plan   body: JSON list of rules; replaces the plan, resets
                            the rule counters and clears the request log
  GET  /__faultproxy/log    the request log, one JSON object per line
  POST /__faultproxy/quit   stop the proxy

A rule (every key but "fault" optional):
  {"method": "PUT",           exact HTTP method, or "*" (default)
   "path": "regex",           re.search on the request path (no query)
   "query": "regex",          re.search on the raw query string, e.g. "partNumber="
   "skip": 0,                 let the first `skip` matching requests through
   "times": 1,                then inject into this many (-1: every one)
   "fault": "status" | "reset_request" | "reset_response" | "truncate" |
            "stall" | "error200",
   "status": 503, "code": "SlowDown", "message": "...",   for "status"
   "after_bytes": N,          reset/truncate/stall after N body bytes
                              (default: half of the body)
   "seconds": S,              for "stall": how long (default: until the proxy
                              exits); then the connection is closed
   "phase": "request"|"body"} for "stall": before any response (default) or
                              after `after_bytes` bytes of the response body

Faults:
  status          consume the request body, answer `status` with an S3 XML
                  <Error> body (nothing is forwarded)
  reset_request   read part of the request body, then reset the connection (RST)
  reset_response  forward, send the headers and part of the body, then RST
  truncate        forward, send the headers (full Content-Length) and part of
                  the body, then close cleanly (FIN): a short body
  stall           stop answering for `seconds` (see "phase"), then close
  error200        consume the request body, answer 200 with an <Error> body
                  (the shape of a failed CompleteMultipartUpload); not forwarded

The proxy is bounded: it exits after --max-seconds, when --parent-pid is gone,
or on /__faultproxy/quit.
"""

import argparse
import http.client
import http.server
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "expect", "proxy-connection",
}
CHUNK = 64 * 1024


class State:
    def __init__(self, log_path):
        self.lock = threading.Lock()
        self.rules = []
        self.counts = []
        self.log = []
        self.seq = 0
        self.log_path = log_path
        self.stop = threading.Event()

    def set_plan(self, rules):
        if not isinstance(rules, list):
            raise ValueError("plan must be a JSON list of rules")
        for r in rules:
            if not isinstance(r, dict) or "fault" not in r:
                raise ValueError("each rule must be an object with a \"fault\"")
            if r["fault"] not in ("status", "reset_request", "reset_response", "truncate",
                                  "stall", "error200"):
                raise ValueError("unknown fault %r" % r["fault"])
            for k in ("path", "query"):
                if k in r:
                    re.compile(r[k])
        with self.lock:
            self.rules = rules
            self.counts = [0] * len(rules)
            self.log = []
            if self.log_path:
                with open(self.log_path, "w"):
                    pass

    def pick(self, method, path, query):
        """The rule to apply to this request, or None; counts matches."""
        with self.lock:
            for i, r in enumerate(self.rules):
                m = r.get("method", "*")
                if m != "*" and m != method:
                    continue
                if "path" in r and not re.search(r["path"], path):
                    continue
                if "query" in r and not re.search(r["query"], query):
                    continue
                n = self.counts[i]
                self.counts[i] += 1
                skip = int(r.get("skip", 0))
                times = int(r.get("times", 1))
                if n < skip:
                    return None
                if times < 0 or n < skip + times:
                    return r
                # budget spent: this rule no longer matches, try the next ones
            return None

    def begin(self, entry):
        """Log the request as it arrives (a stalled request is counted at once)."""
        with self.lock:
            self.seq += 1
            entry["n"] = self.seq
            self.log.append(entry)

    def record(self, entry):
        with self.lock:
            entry["done"] = True
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")


def s3_error_xml(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<RequestId>faultproxy</RequestId></Error>' % (code, message)).encode()


class Abort(Exception):
    """The connection was deliberately reset or closed."""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultproxy"
    sys_version = ""
    state = None
    upstream = None  # (host, port)

    def log_message(self, fmt, *args):
        pass

    def version_string(self):
        return "faultproxy"

    # --- helpers -----------------------------------------------------------------------------

    def _reset(self):
        """Close the client connection with a TCP RST."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self._close_now()

    def _close_now(self):
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True
        raise Abort()

    def _fin(self):
        """Close the client connection cleanly (FIN) after what was sent."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._close_now()

    def _body_reader(self):
        """Yield the request body in pieces (Content-Length or chunked)."""
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise Abort()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left > 0:
                    b = self.rfile.read(min(CHUNK, left))
                    if not b:
                        raise Abort()
                    left -= len(b)
                    yield b
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                b = self.rfile.read(min(CHUNK, left))
                if not b:
                    raise Abort()
                left -= len(b)
                yield b

    def _send_simple(self, status, body, ctype="application/xml"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _upstream_conn(self):
        conn = getattr(self, "_up", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.upstream[0], self.upstream[1], timeout=300)
            self._up = conn
        return conn

    def _drop_upstream(self):
        conn = getattr(self, "_up", None)
        if conn is not None:
            conn.close()
            self._up = None

    # --- control endpoint --------------------------------------------------------------------

    def _control(self, path):
        body = b"".join(self._body_reader())
        if path == "/__faultproxy/plan" and self.command in ("PUT", "POST"):
            try:
                self.state.set_plan(json.loads(body or b"[]"))
            except (ValueError, re.error) as e:
                return self._send_simple(400, ("bad plan: %s\n" % e).encode(), "text/plain")
            return self._send_simple(200, b"ok\n", "text/plain")
        if path == "/__faultproxy/log" and self.command == "GET":
            with self.state.lock:
                out = "".join(json.dumps(e) + "\n" for e in self.state.log)
            return self._send_simple(200, out.encode(), "application/x-ndjson")
        if path == "/__faultproxy/quit":
            self._send_simple(200, b"bye\n", "text/plain")
            self.state.stop.set()
            return None
        return self._send_simple(404, b"unknown control path\n", "text/plain")

    # --- the proxy ---------------------------------------------------------------------------

    def _handle(self):
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, split.query
        if path.startswith("/__faultproxy/"):
            return self._control(path)
        rule = self.state.pick(self.command, path, query)
        fault = rule["fault"] if rule else None
        entry = {"t": round(time.time(), 3), "method": self.command, "path": path,
                 "query": query, "range": self.headers.get("Range"), "fault": fault,
                 "status": None, "req_bytes": 0, "resp_bytes": 0}
        self.state.begin(entry)
        try:
            self._serve(rule, entry)
        finally:
            self.state.record(entry)

    def _serve(self, rule, entry):
        fault = rule["fault"] if rule else None
        clen = int(self.headers.get("Content-Length") or 0)

        if fault in ("status", "error200"):
            for b in self._body_reader():
                entry["req_bytes"] += len(b)
            if fault == "status":
                status = int(rule.get("status", 503))
                code = rule.get("code") or {500: "InternalError", 503: "ServiceUnavailable",
                                            403: "AccessDenied", 404: "NoSuchKey"}.get(
                                                status, "InternalError")
                msg = rule.get("message", "injected by faultproxy")
            else:
                status, code = 200, rule.get("code", "InternalError")
                msg = rule.get("message", "We encountered an internal error. Please try again.")
            entry["status"] = status
            return self._send_simple(status, s3_error_xml(code, msg))

        if fault == "stall" and rule.get("phase", "request") == "request":
            for b in self._body_reader():
                entry["req_bytes"] += len(b)
            self._stall(rule)
            return self._close_now()

        # forward the request
        conn = self._upstream_conn()
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        body = None
        if chunked:  # upstream gets a Content-Length: spool the body first
            body = b"".join(self._body_reader())
            entry["req_bytes"] = len(body)
        for k, v in self.headers.items():
            if k.lower() in HOP_BY_HOP or (chunked and k.lower() == "content-length"):
                continue
            conn.putheader(k, v)
        if chunked:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if chunked:
            conn.send(body)
        else:
            cut = None
            if fault == "reset_request":
                cut = int(rule.get("after_bytes", clen // 2))
            for b in self._body_reader():
                if cut is not None and entry["req_bytes"] + len(b) > cut:
                    part = b[: max(0, cut - entry["req_bytes"])]
                    conn.send(part)
                    entry["req_bytes"] += len(part)
                    self._drop_upstream()
                    self._reset()
                conn.send(b)
                entry["req_bytes"] += len(b)
            if cut is not None:  # body shorter than the cut point: reset at its end
                self._drop_upstream()
                self._reset()
        resp = conn.getresponse()
        entry["status"] = resp.status
        self.send_response(resp.status, resp.reason)
        length = resp.getheader("Content-Length")
        for k, v in resp.getheaders():
            if k.lower() in HOP_BY_HOP or k.lower() in ("date", "server"):
                continue
            self.send_header(k, v)
        no_body = self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        rechunk = length is None and not no_body
        if rechunk:
            self.send_header("Transfer-Encoding", "chunked")
        if resp.will_close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if no_body:
            resp.read()
            self.wfile.flush()
            if resp.will_close:
                self._drop_upstream()
            return None
        cut = None
        if fault in ("reset_response", "truncate", "stall"):
            total = int(length) if length is not None else 0
            cut = int(rule.get("after_bytes", total // 2))
        sent = 0
        while True:
            b = resp.read(CHUNK)
            if not b:
                break
            if cut is not None and sent + len(b) >= cut:
                part = b[: max(0, cut - sent)]
                self._write(part, rechunk)
                sent += len(part)
                entry["resp_bytes"] = sent
                self._drop_upstream()
                if fault == "reset_response":
                    self._reset()
                elif fault == "truncate":
                    self._fin()
                else:
                    self.wfile.flush()
                    self._stall(rule)
                    self._close_now()
            self._write(b, rechunk)
            sent += len(b)
        entry["resp_bytes"] = sent
        if cut is not None:  # body ended before the cut point
            self._drop_upstream()
            if fault == "reset_response":
                self._reset()
            elif fault == "truncate":
                self._fin()
            else:
                self._stall(rule)
                self._close_now()
        if rechunk:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        if resp.will_close:
            self._drop_upstream()
        return None

    def _write(self, b, rechunk):
        if not b:
            return
        if rechunk:
            self.wfile.write(b"%x\r\n" % len(b) + b + b"\r\n")
        else:
            self.wfile.write(b)

    def _stall(self, rule):
        self.wfile.flush()
        secs = rule.get("seconds")
        deadline = None if secs is None else time.monotonic() + float(secs)
        while not self.state.stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            self.state.stop.wait(0.1)

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._handle()
        except Abort:
            self.close_connection = True
        except (OSError, http.client.HTTPException) as e:
            self.close_connection = True
            sys.stderr.write("faultproxy: %s %s: %s\n" % (self.command, self.path, e))
            self._drop_upstream()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        self._drop_upstream()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description="fault-injecting HTTP proxy for tests")
    ap.add_argument("--upstream", required=True, help="http://host:port of the real server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--log", help="append one JSON line per request here")
    ap.add_argument("--plan", help="JSON file with the initial plan")
    ap.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    a = ap.parse_args()

    up = urllib.parse.urlsplit(a.upstream)
    if up.scheme != "http" or not up.hostname:
        ap.error("--upstream must be http://host:port")
    state = State(a.log)
    if a.plan:
        with open(a.plan) as f:
            state.set_plan(json.load(f))
    elif a.log:
        open(a.log, "w").close()
    Handler.state = state
    Handler.upstream = (up.hostname, up.port or 80)
    srv = Server(("127.0.0.1", a.port), Handler)
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)

    def watchdog():
        end = time.monotonic() + a.max_seconds
        while not state.stop.is_set():
            if time.monotonic() > end:
                sys.stderr.write("faultproxy: --max-seconds reached, exiting\n")
                break
            if a.parent_pid:
                try:
                    os.kill(a.parent_pid, 0)
                except ProcessLookupError:
                    break
            state.stop.wait(0.5)
        state.stop.set()
        srv.shutdown()

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    # stalled handler threads are daemons; leave without waiting for them
    os._exit(0)


if __name__ == "__main__":
    main()

"""A tiny web app for piku: answers with who it is and a setting.

It honours PORT (set by piku for each web instance) and BIND_ADDRESS, and
stops cleanly on SIGTERM.
"""
import http.server
import json
import os
import signal
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # headers and body leave at once
    def do_GET(self):
        if self.path == "/env":
            body = json.dumps(dict(os.environ), sort_keys=True, indent=1) + "\n"
        else:
            body = "hello from {} (pid {}, port {}): {}\n".format(
                os.environ.get("APP", "?"), os.getpid(), os.environ.get("PORT"),
                os.environ.get("GREETING", "hi"))
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("%s %s" % (self.address_string(), fmt % args), flush=True)


def main():
    addr = os.environ.get("BIND_ADDRESS", "127.0.0.1")
    port = int(os.environ["PORT"])
    server = http.server.ThreadingHTTPServer((addr, port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening on %s:%d" % (addr, port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""Another local account taking the port the moment it is free, as an attacker would: run as that account.

    python squatter.py PORT LOG

It tries to bind 127.0.0.1:PORT every few milliseconds; once it holds it, it answers every request as a plain
200 page (as Jupyter's would look to a script) and appends each request's head to LOG, a line "bound" first.
"""

from __future__ import annotations

import socket
import sys
import time

ATTEMPT_EVERY = 0.003  # seconds
BODY = b"<p>not jupyter</p>\n"
HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\nContent-Length: {}\r\n\r\n"
ANSWER = HEAD.format(len(BODY)).encode() + BODY


def squat(port: int) -> socket.socket:
    while True:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Jupyter does: past a TIME_WAIT
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(16)
            return sock
        except OSError:
            sock.close()
            time.sleep(ATTEMPT_EVERY)


def main(port: int, log: str) -> None:
    sock = squat(port)
    with open(log, "a", buffering=1) as record:
        record.write("bound\n")
        while True:
            connection, _ = sock.accept()
            with connection:
                connection.settimeout(5)
                head = b""
                try:
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        chunk = connection.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    connection.sendall(ANSWER)
                except OSError:
                    pass
                record.write(head.decode("latin-1").replace("\r\n", "\n") + "\n---\n")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])

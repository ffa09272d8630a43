#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Print a TCP port on 127.0.0.1 that nothing uses, for a server started later.

The port is taken below the kernel's ephemeral range (net.ipv4.ip_local_port_range):
a port the kernel hands out itself (bind to port 0) is also what it gives the next
outgoing connection, and a client of another test holding it when the server binds
makes the server fail to start. Below that range only servers bind, and a random
pick makes two tests choosing at once unlikely to collide.
"""
import random
import socket


def usable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first_ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768
    low, high = 20000, first_ephemeral - 1
    if high - low >= 1000:
        for _ in range(200):
            port = random.randint(low, high)
            if usable(port):
                print(port)
                return
    s = socket.socket()  # an unusual range: let the kernel choose
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


main()

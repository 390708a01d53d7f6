"""Starts localstripe (PyPI) for Tenure's tests: on 127.0.0.1 only (localstripe's own
`start()` listens on every interface), with its state in a file of the caller's choosing
instead of the shared /tmp/localstripe.pickle, so tests running in parallel each have
their own emulator, and a restarted emulator finds the state it had.

localstripe writes the whole store to disk on every object it stores and after every
POST; here only the latter (the middleware's), atomically (write, then rename): a POST's
objects are on disk before its answer is sent, and a kill never leaves half a file.

Usage: python3 run.py PORT STATE_FILE
"""

import logging
import os
import pickle
import socket
import sys

from aiohttp import web

import localstripe.resources as resources
from localstripe.server import app

PORT = int(sys.argv[1])
STATE = sys.argv[2]


def load(self):
    try:
        with open(STATE, "rb") as f:
            old = pickle.load(f)
    except FileNotFoundError:
        return
    self.clear()
    dict.update(self, old)


def dump(self):
    tmp = STATE + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, STATE)


def set_item(self, key, value):
    dict.__setitem__(self, key, value)


def del_item(self, key):
    dict.__delitem__(self, key)


resources.Store.try_load_from_disk = load
resources.Store.dump_to_disk = dump
resources.Store.__setitem__ = set_item
resources.Store.__delitem__ = del_item

resources.store.try_load_from_disk()
logging.basicConfig(level=logging.WARNING)
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", PORT))
web.run_app(app, sock=sock, access_log=None, print=None)

"""The report channel: a pipe of its own from the worker's guard to the checker, on which each
refusal is written the moment it happens (guard.py writes, session.py reads). What reached
the pipe stays with the checker whatever the worker does next: clearing the guard's list,
closing the pipe or putting another file in its place erases nothing already sent.

A record is one line: ``RECORD_TAG <tab> user line <tab> message``. Anything else on the
channel was written by something other than the guard."""
from __future__ import annotations

import contextlib
import os
import select
import threading

RECORD_TAG = "bpttcheck-refused"
RECORD_BYTES = 3500  # under PIPE_BUF (4096): a record reaches the pipe in one piece
# the status the worker exits with when a refusal finds no channel left to write to (user
# code closed it, or put another file in its place, and kept no copy)
CHANNEL_LOST_EXIT = 117
_KEEP = 50  # records kept; the guard sends at most 20
_LINE_CAP = 8192  # bytes of a line without its end before it counts as garbage


def encode(message: str, line: str | None) -> bytes:
    """One record, at most RECORD_BYTES + 1 bytes."""
    fields = (RECORD_TAG, line or "", message)
    text = "\t".join(f.replace("\t", " ").replace("\n", " ").replace("\r", " ") for f in fields)
    return text.encode("utf-8", "replace")[:RECORD_BYTES] + b"\n"


class RefusalChannel:
    """The checker's end: a thread reads the pipe as records arrive and calls ``on_record``
    (the session stops the worker at once); ``drain()`` reads what is there right now, so a
    decision taken after a reply sees every record written before that reply. Reads happen
    only under the lock, by the thread or by drain(), so none is missed between the two."""

    def __init__(self, fd: int, on_record):
        os.set_blocking(fd, False)
        self.fd = fd
        self.lock = threading.Lock()
        self.records: list[tuple[str | None, str]] = []  # (user line, message)
        self.garbage = 0  # bytes on the channel that are no record
        self.eof = False  # every copy of the worker's end is closed
        self._closed = False
        self._partial = b""
        self._on_record = on_record
        self._wake_r, self._wake_w = os.pipe()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while not self.eof:
                events = poller.poll()
                if any(fd == self._wake_r for fd, _ in events):
                    break
                before = len(self.records)
                self.drain()
                if len(self.records) > before:
                    self._on_record()
        finally:
            # this thread closes the descriptors: one closed under a poll() of another thread
            # could be reused by a file the checker opens next
            with self.lock:
                self._closed = True
                os.close(self.fd)
            os.close(self._wake_r)

    def drain(self) -> None:
        """Read and parse everything the pipe holds now."""
        with self.lock:
            if self._closed or self.eof:
                return
            while True:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    return
                except OSError:
                    chunk = b""
                if not chunk:
                    self.eof = True
                    self.garbage += len(self._partial)  # a record always ends its line
                    self._partial = b""
                    return
                self._take(chunk)

    def _take(self, chunk: bytes) -> None:
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            fields = raw.decode("utf-8", "replace").split("\t")
            if len(fields) == 3 and fields[0] == RECORD_TAG and fields[2]:
                if len(self.records) < _KEEP:
                    self.records.append((fields[1] or None, fields[2]))
            else:
                self.garbage += len(raw) + 1
        if len(self._partial) > _LINE_CAP:
            self.garbage += len(self._partial)
            self._partial = b""

    def stop(self) -> None:
        """End the reading thread (it closes the pipe)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        with contextlib.suppress(OSError):
            os.close(self._wake_w)

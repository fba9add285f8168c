"""How an archive is stored: pg_dump's bytes compressed with zstd on threads of their own and
sealed with age for the configured recipients, as one stream; and the way back.

Encoding (a backup): pg_dump writes an uncompressed custom-format archive (`-Z0`) into a
pipe; `zstandard` compresses it on `threads` native threads (the GIL released), `pyrage`
seals the compressed stream in age's 64 KiB chunks, and the sealed bytes go to storage as
they come (hashed there), so pg_dump, compression and the upload overlap and memory stays
a few MB whatever the database size. The manifest's `dump.encoding` lists the layers in
the order they were applied (`["zstd", "age"]`); an old manifest has none (pg_dump's own
gzip inside the archive), and reads as it always did.

Decoding (a restore, a verification) runs the layers backwards on the stored chunks and
pushes the archive to `write`; a wrong key, a damaged or truncated stream is a CodecError.
The result is byte for byte what `age -d -i key.txt FILE | zstd -d` gives.
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

import pyrage
import zstandard

from vigil.backup.identity import BackupError
from vigil.backup.sealing import AGE
from vigil.config import Compression

ZSTD = "zstd"
LAYERS = (ZSTD, AGE)
CHUNK = 1 << 20
# Reading pg_dump's pipe in big batches (pausing briefly after a small read) costs far less
# CPU than waking for every few KB it writes: pg_dump and PostgreSQL share these 2 cores.
SMALL_READ = CHUNK // 4
PAUSE_S = 0.002
JOB_SIZE = 512 * 1024  # zstd's smallest job for multi-threaded compression

Write = Callable[[bytes | memoryview], object]


class CodecError(BackupError):
    """A stored archive does not decode: wrong key, damaged or truncated."""


def layers(compression: Compression, recipients: Sequence[str]) -> list[str]:
    """The encoding layers a backup with these settings carries, in the order applied."""
    return ([ZSTD] if compression.codec == ZSTD else []) + ([AGE] if recipients else [])


def check_layers(encoding: Any) -> list[str]:
    """The manifest's `encoding` as a list; CodecError for a layer this vigil cannot read."""
    if encoding in (None, "none", "identity"):
        return []
    found = [encoding] if isinstance(encoding, str) else list(encoding)
    unknown = [layer for layer in found if layer not in LAYERS]
    if unknown:
        raise CodecError(
            f"the archive is stored with encoding {'+'.join(map(str, found))!r}, which this "
            "vigil cannot read; use the vigil version that wrote it"
        )
    return found


# --- file-like adapters (pyrage and zstandard read and write file objects) --------------------


class PipeReader(io.RawIOBase):
    """pg_dump's pipe, read in batches; counts the bytes and shows each to `tee`."""

    def __init__(self, pipe: IO[bytes], tee: Write | None = None) -> None:
        self._fd = pipe.fileno()
        self._tee = tee
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        got = os.readv(self._fd, [buffer])
        if got:
            self.count += got
            if self._tee is not None:
                self._tee(memoryview(buffer)[:got])
            if got < SMALL_READ:
                time.sleep(PAUSE_S)
        return got


class ChunkReader(io.RawIOBase):
    """An iterator of byte chunks (storage's read) as a readable file."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        return count


class Sink(io.RawIOBase):
    """A writable file that hands every write to `write`."""

    def __init__(self, write: Write) -> None:
        self._write = write

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._write(data)
        return len(data)


class ZstdSink(io.RawIOBase):
    """Decompresses what is written to it (frame after frame) into `write`; `finish`
    refuses a stream that stops inside a frame."""

    def __init__(self, write: Write) -> None:
        self._write = write
        self._frames = zstandard.ZstdDecompressor()
        self._frame = self._frames.decompressobj(write_size=CHUNK)
        self._started = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        pending = bytes(data)
        try:
            while pending:
                self._started = True
                out = self._frame.decompress(pending)
                if out:
                    self._write(out)
                pending = self._frame.unused_data if self._frame.eof else b""
                if self._frame.eof:
                    self._frame = self._frames.decompressobj(write_size=CHUNK)
                    self._started = False
        except zstandard.ZstdError as exc:
            raise CodecError(f"the archive does not decompress (zstd: {exc})") from None
        return len(data)

    def finish(self) -> None:
        if self._started:
            raise CodecError("the archive's zstd stream is truncated (it ends inside a frame)")


# --- the two directions ---------------------------------------------------------------------


def encode(
    source: IO[bytes],
    write: Write,
    compression: Compression,
    recipients: Sequence[str],
    *,
    tee: Write | None = None,
) -> int:
    """pg_dump's pipe, compressed and sealed as configured, to `write`; returns the bytes
    pg_dump wrote (the archive's own size, which a decode must give back)."""
    reader: Any = PipeReader(source, tee)
    stream: Any = reader
    sink: Any = Sink(write)
    compressor = None
    if compression.codec == ZSTD:
        compressor = zstandard.ZstdCompressor(compression_params=zstd_parameters(compression))
    if recipients:
        if compressor is not None:
            stream = compressor.stream_reader(reader, read_size=CHUNK)
        keys = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
        pyrage.encrypt_io(stream, sink, keys)
    elif compressor is not None:
        compressor.copy_stream(reader, sink, read_size=CHUNK, write_size=CHUNK)
    else:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while count := reader.readinto(view):
            write(view[:count])
    return reader.count


def zstd_parameters(compression: Compression) -> Any:
    """The level on `threads` workers, each job the smallest zstd allows: at level 1 its
    default (4 x the window) costs ~20 MB more memory for no gain in speed or size here."""
    if not compression.threads:
        return zstandard.ZstdCompressionParameters.from_level(compression.level)
    return zstandard.ZstdCompressionParameters.from_level(
        compression.level, threads=compression.threads, job_size=JOB_SIZE
    )


def seal_bytes(data: bytes, recipients: Sequence[str]) -> bytes:
    """A small object (the config tarball, a globals file) sealed for `recipients`."""
    return pyrage.encrypt(data, [pyrage.x25519.Recipient.from_str(r) for r in recipients])


def decode(
    chunks: Iterable[bytes], encoding: Sequence[str], keys: Sequence[Any], write: Write
) -> int:
    """The stored chunks, decoded layer by layer (last applied, first undone), to `write`;
    returns the archive's size. CodecError when it does not decode."""
    count = 0

    def counted(data: bytes | memoryview) -> None:
        nonlocal count
        count += len(data)
        write(data)

    if ZSTD not in encoding:
        sink: Any = Sink(counted)
        if AGE in encoding:
            _decrypt(chunks, keys, sink)
        else:
            for chunk in chunks:
                sink.write(chunk)
        return count
    # Three stages on threads of their own: reading + hashing + unsealing here, zstd on the
    # next, the writes on the last; each hands ~1 MB pieces through a short queue, so the
    # stages overlap on both cores (zstd, age and file writes release the GIL).
    writes = Handoff(Sink(counted), "vigil-write")
    with writes, Handoff(ZstdSink(writes.write), "vigil-decompress") as handoff:
        if AGE in encoding:
            _decrypt(chunks, keys, handoff)
        else:
            for chunk in chunks:
                handoff.write(chunk)
    return count


class Handoff(io.RawIOBase):
    """One stage of the way back (decompression, or the writes) on a thread of its own, fed
    through a short queue, so the stage before it overlaps with it on another core. An
    error on that thread surfaces at the next write or at the end."""

    def __init__(self, sink: Any, name: str = "vigil-decode") -> None:
        self._sink = sink
        # At most 8 pieces in flight per stage: 8 MB of 1 MB chunks, 512 KB of age chunks.
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)

    def __enter__(self) -> Handoff:
        self._thread.start()
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        self._queue.put(None)  # the thread always takes what is queued, so this returns
        if kind is not None:
            self._thread.join()
            return
        self._thread.join()
        self._raise()
        finish = getattr(self._sink, "finish", None)
        if finish is not None:
            finish()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._raise()
        while True:
            try:
                self._queue.put(bytes(data), timeout=0.5)
                return len(data)
            except queue.Full:
                self._raise()

    def _raise(self) -> None:
        """The decoding thread's error, once it has stopped (it keeps taking what is written
        after an error, so the stored stream is still read, and hashed, to its end)."""
        if self._error is not None and not self._thread.is_alive():
            raise self._error

    def _drain(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                if self._error is None:
                    self._sink.write(data)
        except BaseException as exc:
            self._error = exc
            while self._queue.get() is not None:  # let the producer finish its writes
                pass


def _decrypt(chunks: Iterable[bytes], keys: Sequence[Any], sink: Any) -> None:
    """age's decryption over the chunks into `sink`. pyrage turns an exception raised in our
    own reads and writes (storage failing, a full disk, zstd refusing) into its own, so
    those are kept and raised as they were; anything else is the stream's fault."""
    caught: list[BaseException] = []

    def keep(call: Callable[[Any], int]) -> Callable[[Any], int]:
        def kept(argument: Any) -> int:
            try:
                return call(argument)
            except BaseException as exc:
                caught.append(exc)
                raise

        return kept

    reader: Any = ChunkReader(chunks)
    reader.readinto = keep(reader.readinto)
    sink.write = keep(sink.write)
    try:
        pyrage.decrypt_io(reader, sink, list(keys))
    except (pyrage.DecryptError, OSError, ValueError) as exc:
        if caught:
            raise caught[0] from None
        if isinstance(exc, pyrage.DecryptError) and "no matching keys" in str(exc).lower():
            raise CodecError("the archive does not decrypt: no identity given matches") from None
        raise CodecError(
            f"the archive does not decrypt ({exc}): it is damaged or truncated"
        ) from None
    if caught:
        raise caught[0]


def open_sealed(data: bytes, keys: Sequence[Any]) -> bytes:
    """A small sealed object opened (the config tarball)."""
    try:
        return pyrage.decrypt(data, list(keys))
    except pyrage.DecryptError as exc:
        raise CodecError(f"does not decrypt with the identity given ({exc})") from None

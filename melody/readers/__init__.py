"""Readers of music files, one module per format, registered here by file suffix.

Each module has SUFFIXES and parse(path, data) -> a result (readers/common.py: events, key,
meters, pickup; or a skip with its reason; never an exception), and, where a file may hold many
songs, split(name, data) -> [(song name, bytes)]. A new format is one new module added to
_MODULES.

    read_file(path) -> [(name, result)]    one per song in the file
    read_bounded(path) -> the same, read in a child process with a time and memory limit
"""

import importlib
import multiprocessing
from pathlib import Path

import config
from melody.readers import abc, common, kern, midi, musicxml

_MODULES = (kern, abc, musicxml, midi)
READERS = {suffix: module for module in _MODULES for suffix in module.SUFFIXES}


def reader(path):
    """The module that reads a file, by its suffix (any case), or None."""
    return READERS.get(Path(path).suffix.lower())


def split(path, name, data):
    """A file's bytes -> [(song name, bytes)]: one song per file unless its format says more."""
    module = reader(path)
    return module.split(name, data) if hasattr(module, "split") else [(name, data)]


def parse(path, data):
    """One song's bytes (from split) -> its result."""
    return reader(path).parse(str(path), data)


def read_file(path):
    """A music file -> [(name, result)], one per song in it (name: the file's name, with `X:n`
    for each tune of an ABC file). Never raises on a bad file: its result is a skip."""
    path = Path(path)
    if not path.exists():
        return [(path.name, {"skip": "not found"})]
    if path.is_dir():
        return [(path.name, {"skip": "a folder, not a file"})]
    if reader(path) is None:
        known = ", ".join(sorted(READERS))
        return [(path.name, {"skip": f"unknown suffix (known: {known})"})]
    try:
        data = path.read_bytes()
    except OSError as error:
        return [(path.name, {"skip": "unreadable", "detail": error.strerror or str(error)})]
    return [(name, parse(path, chunk)) for name, chunk in split(path, path.name, data)]


TIMED_OUT = "took too long to read"
OUT_OF_MEMORY = "ran out of memory reading it"


def read_bounded(path, timeout=config.PARSE_TIMEOUT, memory=config.PARSE_MEMORY_BYTES):
    """read_file in a child process that may use `memory` more bytes of address space and
    `timeout` seconds (0: no limit), so that no file can hold or fill the caller's process; from
    any thread. Past a limit, the one song is a skip saying which."""
    if "fork" not in multiprocessing.get_all_start_methods():  # Windows: bounded by the readers
        return read_file(path)
    # fork: the child has the caller's modules at once (a fresh interpreter imports music21 for
    # a second or more) and runs only the readers, none of the caller's threads
    context = multiprocessing.get_context("fork")
    importlib.import_module("music21.converter")  # once here, not in every child
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_read_child, args=(str(path), send, memory), daemon=True)
    child.start()
    send.close()
    try:
        if receive.poll(timeout or None):
            return receive.recv()
        skip = {"skip": TIMED_OUT, "detail": f"over {timeout:g} s"}
    except EOFError:  # the child died: the memory limit is the one way it can
        skip = {"skip": OUT_OF_MEMORY, "detail": f"over {memory} bytes"}
    finally:
        child.kill()
        child.join()
        receive.close()
    return [(Path(path).name, skip)]


def _read_child(path, send, memory):
    """read_file in the child: its result, or a skip saying what went wrong, sent back."""
    if memory:
        limit_memory(memory)
    try:
        send.send(read_file(path))
    except MemoryError:
        send.send([(Path(path).name, {"skip": OUT_OF_MEMORY})])
    except Exception as error:  # a reader's bug: said in one line, as the caller's own would be
        send.send([(Path(path).name, common.failure("a reader failed", error))])
    finally:
        send.close()


def limit_memory(memory):
    """Allow this process `memory` bytes of address space on top of what it maps already (the
    fork of a process with torch maps gigabytes it never touches); past them, an allocation is a
    MemoryError. Called again, it sets the limit anew; None lifts it."""
    try:
        import resource

        mapped = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    except (ImportError, OSError):  # Windows, or no /proc: the timeout alone bounds the read
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if memory is None:
        limit = hard
    elif hard == resource.RLIM_INFINITY:
        limit = mapped + memory
    else:
        limit = min(mapped + memory, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

"""The compiled-module cache: in memory, on disk, private, and never trusting a bad entry."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import CALCULATOR, LOOPS, SPIRITS

from vudo_runtime import CacheWarning, Spirit, SpiritLoadError, cache
from vudo_runtime.cache import clear_memory_cache, compile_module
from vudo_runtime.engine import EngineSettings

IS_ROOT = hasattr(os, "getuid") and os.getuid() == 0


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Each test starts as a fresh process would: nothing compiled in memory."""
    clear_memory_cache()
    yield
    clear_memory_cache()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.cwasm")) if directory.exists() else []


def load_calc(directory: Path | bool) -> Spirit:
    spirit = Spirit.load_sync(CALCULATOR, cache=directory)
    assert spirit.call_sync("add", 40, 2) == 42
    assert spirit.call_sync("divmod", 7, 2) == (3, 1)
    return spirit


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- writing ------------------------------------------------------------------------------


def test_a_load_writes_one_private_entry(cache_dir: Path, compiles: list[bytes]) -> None:
    load_calc(cache_dir)
    assert len(compiles) == 1
    (entry,) = entries(cache_dir)
    assert mode(cache_dir) == 0o700
    assert mode(entry) & 0o077 == 0  # readable by the owner only
    assert entry.stat().st_size > len(CALCULATOR.read_bytes())
    assert not list(cache_dir.glob(".tmp-*"))  # written atomically, nothing left over


def test_nested_cache_directories_are_created(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "vudo"
    load_calc(directory)
    assert len(entries(directory)) == 1
    assert mode(directory) == 0o700


def test_cache_given_as_a_str(cache_dir: Path) -> None:
    Spirit.load_sync(CALCULATOR, cache=str(cache_dir))
    assert len(entries(cache_dir)) == 1


def test_one_entry_per_module_and_engine_settings(cache_dir: Path) -> None:
    load_calc(cache_dir)
    Spirit.load_sync(SPIRITS / "calculator.wat", cache=cache_dir)  # the same wasm bytes
    assert len(entries(cache_dir)) == 1
    Spirit.load_sync(LOOPS, cache=cache_dir)
    assert len(entries(cache_dir)) == 2
    metered = Spirit.load_sync(CALCULATOR, cache=cache_dir, fuel=1000)  # a fuel engine
    assert metered.call_sync("add", 1, 2) == 3
    assert len(entries(cache_dir)) == 3


def test_invalid_modules_leave_no_entry(cache_dir: Path) -> None:
    with pytest.raises(SpiritLoadError):
        Spirit.load_sync(CALCULATOR.read_bytes()[:100], cache=cache_dir)
    assert entries(cache_dir) == []


# ---- reading --------------------------------------------------------------------------------


def test_the_memory_cache_compiles_once(cache_dir: Path, compiles: list[bytes]) -> None:
    wasm = CALCULATOR.read_bytes()
    first = compile_module(wasm, EngineSettings(), cache=cache_dir)
    assert compile_module(wasm, EngineSettings(), cache=cache_dir) is first
    load_calc(cache_dir)
    load_calc(False)
    assert len(compiles) == 1


def test_a_fresh_process_reads_the_disk_cache(cache_dir: Path, compiles: list[bytes]) -> None:
    load_calc(cache_dir)
    assert len(compiles) == 1
    clear_memory_cache()
    load_calc(cache_dir)
    assert len(compiles) == 1  # deserialized, not compiled
    module = compile_module(CALCULATOR.read_bytes(), EngineSettings(), cache=cache_dir)
    assert [e.name for e in module.exports][:2] == ["add", "sub"]
    assert len(compiles) == 1


def _garbage(blob: bytes) -> bytes:
    return os.urandom(len(blob))


def _truncated(blob: bytes) -> bytes:
    return blob[: len(blob) // 2]


def _flip_payload_byte(blob: bytes) -> bytes:
    i = len(blob) * 3 // 4
    return blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1 :]


def _flip_checksum_byte(blob: bytes) -> bytes:
    i = blob.index(b"\n") + 5  # inside the digest after the magic line
    return blob[:i] + bytes([blob[i] ^ 0x80]) + blob[i + 1 :]


def _other_magic(blob: bytes) -> bytes:
    return b"X" + blob[1:]


def _empty(blob: bytes) -> bytes:
    return b""


def _header_only(blob: bytes) -> bytes:
    return blob[: blob.index(b"\n") + 1 + 32]


def _payload_only(blob: bytes) -> bytes:
    return blob[blob.index(b"\n") + 1 + 32 :]  # a raw serialized module, no checksum


@pytest.mark.parametrize(
    "damage",
    [
        _garbage,
        _truncated,
        _flip_payload_byte,
        _flip_checksum_byte,
        _other_magic,
        _empty,
        _header_only,
        _payload_only,
    ],
)
def test_a_damaged_entry_is_recompiled_and_rewritten(
    cache_dir: Path, compiles: list[bytes], damage: Callable[[bytes], bytes]
) -> None:
    load_calc(cache_dir)
    (entry,) = entries(cache_dir)
    entry.write_bytes(damage(entry.read_bytes()))
    clear_memory_cache()

    load_calc(cache_dir)  # still loads, and works
    assert len(compiles) == 2  # the damaged entry was not used
    assert entries(cache_dir) == [entry]

    clear_memory_cache()
    load_calc(cache_dir)
    assert len(compiles) == 2  # the rewritten entry is valid


def test_an_entry_filed_under_another_module_is_not_used(
    cache_dir: Path, compiles: list[bytes]
) -> None:
    load_calc(cache_dir)
    (calc_entry,) = entries(cache_dir)
    Spirit.load_sync(LOOPS, cache=cache_dir)
    (loops_entry,) = [e for e in entries(cache_dir) if e != calc_entry]
    shutil.copyfile(calc_entry, loops_entry)  # a valid entry, but of the calculator
    clear_memory_cache()

    loops = Spirit.load_sync(LOOPS, cache=cache_dir)
    assert loops.has_function("spin")
    assert not loops.has_function("add")
    assert loops.call_sync("sum_to", 10) == 55
    assert len(compiles) == 3
    load_calc(cache_dir)  # the calculator's own entry is untouched
    assert len(compiles) == 3


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give a file to another user")
def test_an_entry_owned_by_another_user_is_not_used(cache_dir: Path, compiles: list[bytes]) -> None:
    load_calc(cache_dir)
    (entry,) = entries(cache_dir)
    os.chown(entry, 4242, 4242)
    clear_memory_cache()
    load_calc(cache_dir)
    assert len(compiles) == 2
    assert entry.stat().st_uid == os.getuid()  # replaced by our own


def test_a_symlinked_entry_is_not_followed(
    tmp_path: Path, cache_dir: Path, compiles: list[bytes]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    load_calc(elsewhere)
    (target,) = entries(elsewhere)
    before = target.read_bytes()
    cache_dir.mkdir(mode=0o700)
    link = cache_dir / target.name
    link.symlink_to(target)  # a valid entry, with the right name, yet behind a link
    clear_memory_cache()

    load_calc(cache_dir)
    assert len(compiles) == 2  # the link was not followed
    assert not link.is_symlink() and link.is_file()  # replaced by a real entry
    assert target.read_bytes() == before  # and its target left alone
    clear_memory_cache()
    load_calc(cache_dir)
    assert len(compiles) == 2


#: Loads the calculator with a FIFO in place of its entry; run apart so a hang can be killed.
#: With "full", the FIFO holds a valid entry (taken from another cache directory), so only
#: refusing anything but a regular file keeps it from being used.
_FIFO_SCRIPT = """
import os, sys
from pathlib import Path
from vudo_runtime import cache
from vudo_runtime.engine import EngineSettings
from vudo_runtime import Spirit

wasm_path, directory, full = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "full"
directory.mkdir(mode=0o700)
entry = cache.entry_path(directory, cache.wasm_digest(wasm_path.read_bytes()), EngineSettings())
os.mkfifo(entry, 0o600)
reader = os.open(entry, os.O_RDONLY | os.O_NONBLOCK)  # keeps written bytes in the pipe
if full:
    elsewhere = directory.parent / "elsewhere"
    Spirit.load_sync(wasm_path, cache=elsewhere)
    cache.clear_memory_cache()
    blob = (elsewhere / entry.name).read_bytes()
    assert len(blob) < 65536, "must fit the pipe buffer"
    writer = os.open(entry, os.O_WRONLY)
    os.write(writer, blob)
    os.close(writer)  # a reader now gets the blob, then end of file
spirit = Spirit.load_sync(wasm_path, cache=directory)
assert spirit.call_sync("add", 40, 2) == 42
print(entry.name)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("content", ["empty", "full"])
def test_a_fifo_entry_is_refused_without_hanging(
    tmp_path: Path, compiles: list[bytes], content: str
) -> None:
    directory = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-c", _FIFO_SCRIPT, str(CALCULATOR), str(directory), content],
        capture_output=True,
        text=True,
        timeout=30,  # a blocking open of the FIFO would wait for a writer forever
    )
    assert done.returncode == 0, done.stderr
    entry = directory / done.stdout.strip()
    assert entries(directory) == [entry]
    # Only a recompilation rewrites the entry: the FIFO was not used.
    assert stat.S_ISREG(entry.lstat().st_mode)
    load_calc(directory)
    assert compiles == []  # and the rewritten entry is valid


def test_an_oversized_entry_is_refused(
    cache_dir: Path, compiles: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    load_calc(cache_dir)
    (entry,) = entries(cache_dir)
    size = entry.stat().st_size
    monkeypatch.setattr(cache, "_MAX_ENTRY_BYTES", size)
    clear_memory_cache()
    load_calc(cache_dir)
    assert len(compiles) == 1  # at the cap: read

    monkeypatch.setattr(cache, "_MAX_ENTRY_BYTES", size - 1)
    clear_memory_cache()
    load_calc(cache_dir)
    assert len(compiles) == 2  # one byte over: refused, recompiled


def test_reads_stop_one_byte_past_the_cap(tmp_path: Path) -> None:
    # The fstat size check has a twin while reading: a file may grow after its fstat.
    path = tmp_path / "big"
    path.write_bytes(b"x" * 100)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert cache._read_at_most(fd, 100) == b"x" * 100
        os.lseek(fd, 0, os.SEEK_SET)
        assert cache._read_at_most(fd, 99) is None
        os.lseek(fd, 0, os.SEEK_SET)
        assert cache._read_at_most(fd, 0) is None
    finally:
        os.close(fd)


# ---- refusing the cache -------------------------------------------------------------------


@pytest.mark.parametrize("perm", [0o777, 0o770, 0o702])
def test_a_directory_others_can_write_is_refused(
    cache_dir: Path, compiles: list[bytes], perm: int
) -> None:
    cache_dir.mkdir()
    cache_dir.chmod(perm)
    with pytest.warns(CacheWarning, match="writable by group or others") as record:
        load_calc(cache_dir)
    assert str(cache_dir) in str(record[0].message)
    assert "chmod 700" in str(record[0].message)
    assert entries(cache_dir) == []  # nothing written
    assert mode(cache_dir) == perm  # and the directory is left alone
    clear_memory_cache()
    with pytest.warns(CacheWarning):
        load_calc(cache_dir)
    assert len(compiles) == 2  # and nothing read


def test_entries_in_a_refused_directory_are_not_read(
    cache_dir: Path, compiles: list[bytes]
) -> None:
    load_calc(cache_dir)
    cache_dir.chmod(0o777)
    clear_memory_cache()
    with pytest.warns(CacheWarning):
        load_calc(cache_dir)
    assert len(compiles) == 2


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give a directory to another user")
def test_a_directory_owned_by_another_user_is_refused(cache_dir: Path) -> None:
    cache_dir.mkdir(mode=0o700)
    os.chown(cache_dir, 4242, 4242)
    with pytest.warns(CacheWarning, match="owned by another user"):
        load_calc(cache_dir)
    assert entries(cache_dir) == []


@pytest.mark.parametrize("depth", [1, 2])
def test_a_world_writable_parent_without_sticky_bit_warns(
    tmp_path: Path, compiles: list[bytes], depth: int
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    directory = shared / "me" / "vudo" if depth == 2 else shared / "vudo"
    with pytest.warns(CacheWarning, match="world-writable") as record:
        load_calc(directory)
    message = str(record[0].message)
    assert str(directory) in message and str(shared) in message
    assert "cache=path" in message
    assert len(entries(directory)) == 1  # the entries still guard themselves: cache in use
    clear_memory_cache()
    with pytest.warns(CacheWarning):
        load_calc(directory)
    assert len(compiles) == 1


def test_a_sticky_world_writable_parent_does_not_warn(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: others cannot rename what they do not own
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_calc(shared / "vudo")
    assert len(entries(shared / "vudo")) == 1


def test_a_cache_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    with pytest.warns(CacheWarning, match="unusable"):
        load_calc(path)
    assert path.read_text() == "x"


def test_cache_false_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiles: list[bytes]
) -> None:
    env_dir = tmp_path / "env-cache"
    monkeypatch.setenv("VUDO_CACHE_DIR", str(env_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_calc(False)
        clear_memory_cache()
        load_calc(False)
    assert not env_dir.exists()
    assert len(compiles) == 2


# ---- where the cache lives ----------------------------------------------------------------


def test_vudo_cache_dir_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dir = tmp_path / "env-cache"
    monkeypatch.setenv("VUDO_CACHE_DIR", str(env_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_cache_dir() == env_dir
    load_calc(True)
    assert len(entries(env_dir)) == 1
    assert mode(env_dir) == 0o700
    assert not (tmp_path / "xdg").exists()


def test_the_default_cache_is_the_private_test_directory(
    _private_vudo_cache: Path, compiles: list[bytes]
) -> None:
    load_calc(True)
    assert cache.default_cache_dir() == _private_vudo_cache
    assert entries(_private_vudo_cache)


def test_xdg_cache_home_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VUDO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_cache_dir() == tmp_path / "xdg" / "vudo"
    load_calc(True)
    assert len(entries(tmp_path / "xdg" / "vudo")) == 1
    assert mode(tmp_path / "xdg" / "vudo") == 0o700


def test_an_empty_vudo_cache_dir_means_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VUDO_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_cache_dir() == tmp_path / "xdg" / "vudo"


def test_home_cache_without_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VUDO_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.default_cache_dir() == tmp_path / "home" / ".cache" / "vudo"
    load_calc(True)
    assert len(entries(tmp_path / "home" / ".cache" / "vudo")) == 1


def test_resolve_cache_dir() -> None:
    assert cache.resolve_cache_dir(False) is None
    assert cache.resolve_cache_dir(True) == cache.default_cache_dir()
    assert cache.resolve_cache_dir("/some/where") == Path("/some/where")

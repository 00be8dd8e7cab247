"""spirit.toml manifests: parsing, every error naming the file and the key, narrowing."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo_runtime.errors import ManifestError, SpiritLoadError, TamperedSpiritError
from vudo_runtime.manifest import (
    HostPolicy,
    Limits,
    Manifest,
    WasiDir,
    load_manifest,
    parse_manifest,
)
from vudo_runtime.signing import TrustPolicy, sign, verify, write_keypair

WASM = bytes(wasmtime.wat2wasm('(module (func (export "one") (result i32) (i32.const 1)))'))
SHA = hashlib.sha256(WASM).hexdigest()

FULL = f"""
[spirit]
name = "calculator"
version = "1.0.0"
source = "calculator.wasm"
sha256 = "{SHA.upper()}"

[grants]
loas = ["core", "wasi"]

[limits]
timeout = 2.0
fuel = 1000000
max_memory = "16 MiB"

[wasi]
dirs = [
  {{ host = "data", guest = "/data", mode = "ro" }},
  {{ host = "out", guest = "/out", mode = "rw" }},
]
env = {{ GREETING = "hi" }}
args = ["--verbose"]

[config]
any_key = "any TOML value"
nested = {{ list = [1, 2.5, "three"], flag = true }}
"""

MINIMAL = f"""
[spirit]
name = "calculator"
source = "calculator.wasm"
sha256 = "{SHA}"
"""


def write(tmp_path: Path, text: str, wasm: bytes | None = WASM) -> Path:
    path = tmp_path / "spirit.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    if wasm is not None:
        (tmp_path / "calculator.wasm").write_bytes(wasm)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    return message


# --- Parsing ---------------------------------------------------------------------------------


def test_full_manifest(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    m = load_manifest(path)
    assert m.path == path and m.directory == tmp_path
    assert m.raw == path.read_bytes()
    assert (m.name, m.version) == ("calculator", "1.0.0")
    assert m.source == tmp_path / "calculator.wasm"
    assert m.sha256 == SHA  # normalised to lower case
    assert m.loas == ("core", "wasi")
    assert m.limits == Limits(timeout=2.0, fuel=1_000_000, max_memory=16 << 20)
    assert m.wasi.dirs == (
        WasiDir(host=tmp_path / "data", guest="/data", mode="ro"),
        WasiDir(host=tmp_path / "out", guest="/out", mode="rw"),
    )
    assert [d.writable for d in m.wasi.dirs] == [False, True]
    assert m.wasi.env == {"GREETING": "hi"}
    assert m.wasi.args == ("--verbose",)
    assert m.config == {
        "any_key": "any TOML value",
        "nested": {"list": [1, 2.5, "three"], "flag": True},
    }
    with pytest.raises(TypeError):
        m.config["x"] = 1  # type: ignore[index]
    assert m.read_source() == WASM
    assert m == load_manifest(path) and hash(m) == hash(load_manifest(path))


def test_minimal_manifest_defaults(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, MINIMAL))
    assert m.version is None
    assert m.loas == ()  # a manifest grants only what it asks for
    assert m.limits == Limits()
    assert m.wasi.dirs == () and dict(m.wasi.env) == {} and m.wasi.args == ()
    assert dict(m.config) == {}


@pytest.mark.parametrize(
    ("text", "size"),
    [("65536", 65536), ('"64 KiB"', 65536), ('"1GiB"', 1 << 30), ('"1.5 MiB"', 3 << 19),
     ('"4096 B"', 4096), ('"4096"', 4096)],
)  # fmt: skip
def test_max_memory_units(tmp_path: Path, text: str, size: int) -> None:
    m = load_manifest(write(tmp_path, MINIMAL + f"[limits]\nmax_memory = {text}\n"))
    assert m.limits.max_memory == size


def test_relative_paths_resolve_against_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "calc.wasm").write_bytes(WASM)
    sub = tmp_path / "spirits" / "calc"
    sub.mkdir(parents=True)
    text = MINIMAL.replace("calculator.wasm", "../../build/calc.wasm")
    text += '[wasi]\ndirs = [{ host = "../../data", guest = "/data" }]\n'
    m = load_manifest(write(sub, text, wasm=None))
    assert m.source == tmp_path / "build" / "calc.wasm"
    assert m.wasi.dirs[0].host == tmp_path / "data"
    assert m.read_source() == WASM


def test_bom_and_crlf_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "spirit.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.replace("\n", "\r\n").encode())
    (tmp_path / "calculator.wasm").write_bytes(WASM)
    assert load_manifest(path).name == "calculator"


# --- The source and its hash -----------------------------------------------------------------


def test_sha256_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL, wasm=WASM + b"\x00\x01\x00")  # a trailing custom section
    m = load_manifest(path)
    with pytest.raises(ManifestError) as info:
        m.read_source()
    text = str(info.value)
    actual = hashlib.sha256(WASM + b"\x00\x01\x00").hexdigest()
    assert text.startswith(f"{path}: [spirit] sha256: {tmp_path / 'calculator.wasm'} has")
    assert f"sha256 {actual}" in text and f"expects {SHA}" in text
    assert f"update sha256 in {path} to {actual}" in text


def test_missing_source(tmp_path: Path) -> None:
    text = MINIMAL.replace("calculator.wasm", "../elsewhere/calc.wasm")
    m = load_manifest(write(tmp_path, text, wasm=None))
    with pytest.raises(ManifestError) as info:
        m.read_source()
    resolved = tmp_path.parent / "elsewhere" / "calc.wasm"
    assert str(info.value) == (
        f"{tmp_path / 'spirit.toml'}: [spirit] source: file not found: {resolved}"
    )


def test_a_signed_module_matches_the_hash_written_before_signing(tmp_path: Path) -> None:
    private, public = write_keypair(tmp_path / "key")
    path = write(tmp_path, MINIMAL)
    m = load_manifest(path)
    signed = sign(WASM, private, m.raw)
    (tmp_path / "calculator.wasm").write_bytes(signed)
    assert m.read_source() == signed
    verify(m.read_source(), TrustPolicy(public), m.raw)
    # a manifest pinning the signed file's own bytes is accepted too
    pinned = write(tmp_path, MINIMAL.replace(SHA, hashlib.sha256(signed).hexdigest()), None)
    assert load_manifest(pinned).read_source() == signed


def test_signing_covers_the_manifest_file(tmp_path: Path) -> None:
    private, public = write_keypair(tmp_path / "key")
    path = write(tmp_path, FULL)
    m = load_manifest(path)
    (tmp_path / "calculator.wasm").write_bytes(sign(m.read_source(), private, m.raw))
    policy = TrustPolicy(public)
    verify(m.read_source(), policy, m.raw, source=str(m.source))
    path.write_text(FULL.replace("fuel = 1000000", "fuel = 999999999"), encoding="utf-8")
    changed = load_manifest(path)
    with pytest.raises(TamperedSpiritError, match="manifest changed after signing"):
        verify(changed.read_source(), policy, changed.raw, source=str(changed.source))


# --- Every bad input names the file, the section and the key ---------------------------------

BAD = {
    "unknown section": ("[limts]\nfuel = 1\n", "[limts]: unknown section; did you mean [limits]?"),
    "unknown key": ("[limits]\nfule = 1\n", "[limits] fule: unknown key; did you mean 'fuel'?"),
    "unknown spirit key": (
        '[grants]\nloa = ["core"]\n',
        "[grants] loa: unknown key; did you mean 'loas'?",
    ),
    "key outside a section": (
        None,
        "fuel: a key outside any section; it belongs under [limits]",
    ),
    "section not a table": (None, "[grants]: must be a table, got a string"),
    "name type": (None, "[spirit] name: must be a string, got an integer (7); quote it"),
    "loas type": ('[grants]\nloas = "core"\n', "[grants] loas: must be an array of strings"),
    "loa item type": ("[grants]\nloas = [1]\n", "[grants] loas[0]: must be a string"),
    "loa twice": (
        '[grants]\nloas = ["core", "core"]\n',
        "[grants] loas[1]: 'core' is listed twice",
    ),
    "timeout type": ('[limits]\ntimeout = "2s"\n', "[limits] timeout: must be a number"),
    "timeout zero": ("[limits]\ntimeout = 0\n", "[limits] timeout: must be positive, got 0"),
    "timeout negative": ("[limits]\ntimeout = -1.5\n", "[limits] timeout: must be positive"),
    "timeout nan": ("[limits]\ntimeout = nan\n", "[limits] timeout: must be positive"),
    "fuel float": ("[limits]\nfuel = 1e6\n", "[limits] fuel: must be an integer, got a float"),
    "fuel bool": ("[limits]\nfuel = true\n", "[limits] fuel: must be an integer, got a boolean"),
    "fuel negative": ("[limits]\nfuel = -5\n", "[limits] fuel: must be positive, got -5"),
    "memory unit": (
        '[limits]\nmax_memory = "16 MB"\n',
        "[limits] max_memory: unknown unit 'MB' in '16 MB' (did you mean 'MiB'?)",
    ),
    "memory text": ('[limits]\nmax_memory = "lots"\n', "[limits] max_memory: cannot read"),
    "memory zero": ("[limits]\nmax_memory = 0\n", "[limits] max_memory: must be positive"),
    "memory zero text": (
        '[limits]\nmax_memory = "0 KiB"\n',
        "[limits] max_memory: must be a positive size",
    ),
    "memory type": ("[limits]\nmax_memory = 1.5\n", "[limits] max_memory: must be bytes"),
    "dir mode": (
        '[wasi]\ndirs = [{ host = "d", guest = "/d", mode = "wr" }]\n',
        '[wasi] dirs[0].mode: must be "ro" or "rw", got \'wr\'',
    ),
    "dir missing guest": (
        '[wasi]\ndirs = [{ host = "d" }]\n',
        "[wasi] dirs[0].guest: required key is missing",
    ),
    "dir key typo": (
        '[wasi]\ndirs = [{ hots = "d", guest = "/d" }]\n',
        "[wasi] dirs[0].hots: unknown key; did you mean 'host'?",
    ),
    "dir not a table": ('[wasi]\ndirs = ["d"]\n', "[wasi] dirs[0]: must be a table"),
    "dirs not an array": ('[wasi]\ndirs = "d"\n', "[wasi] dirs: must be an array of tables"),
    "dir twice": (
        '[wasi]\ndirs = [{ host = "a", guest = "/d" }, { host = "b", guest = "/d" }]\n',
        "[wasi] dirs[1].guest: '/d' is mapped twice",
    ),
    "env value": ("[wasi]\nenv = { N = 1 }\n", "[wasi] env.N: must be a string, got an integer"),
    "env type": ('[wasi]\nenv = ["A=1"]\n', "[wasi] env: must be a table of strings"),
    "args item": ('[wasi]\nargs = ["-v", 2]\n', "[wasi] args[1]: must be a string"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_file_section_and_key(tmp_path: Path, case: str) -> None:
    extra, expected = BAD[case]
    if case == "key outside a section":
        text = "fuel = 1\n" + MINIMAL
    elif case == "section not a table":
        text = 'grants = "core"\n' + MINIMAL
    elif case == "name type":
        text = MINIMAL.replace('name = "calculator"', "name = 7")
    else:
        text = MINIMAL + (extra or "")
    message = error_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'spirit.toml'}: {expected}"), message


@pytest.mark.parametrize("key", ["name", "source", "sha256"])
def test_required_keys(tmp_path: Path, key: str) -> None:
    text = "\n".join(ln for ln in MINIMAL.splitlines() if not ln.startswith(key))
    message = error_of(tmp_path, text)
    assert message == f"{tmp_path / 'spirit.toml'}: [spirit] {key}: required key is missing"


def test_missing_spirit_section(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[grants]\nloas = ["core"]\n')
    assert ": [spirit]: required section is missing" in message


def test_bad_sha256(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace(SHA, "abc123"))
    assert f": [spirit] sha256: must be 64 hex digits (the sha256 of {tmp_path}" in message


def test_empty_name(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace('"calculator"', '"  "'))
    assert message.endswith("[spirit] name: must not be empty")


def test_invalid_toml_gives_line_and_column(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[spirit]\nname = "calc"\nsource = \n')
    assert message == f"{tmp_path / 'spirit.toml'}:3:10: invalid TOML: Invalid value"
    message = error_of(tmp_path, MINIMAL + "[spirit]\n")
    assert ":6:8: invalid TOML: Cannot declare ('spirit',) twice" in message


def test_unreadable_manifests(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found") as info:
        load_manifest(tmp_path / "nope.toml")
    assert str(info.value).startswith(str(tmp_path / "nope.toml"))
    with pytest.raises(ManifestError, match="is a directory"):
        load_manifest(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[spirit]\nname = "caf\xe9"\n')
    with pytest.raises(ManifestError, match=r"latin1\.toml:2:12: not UTF-8 text \(byte 0xe9\)"):
        load_manifest(bad)
    assert issubclass(ManifestError, SpiritLoadError)


def test_parse_manifest_from_bytes(tmp_path: Path) -> None:
    m = parse_manifest(MINIMAL.encode(), tmp_path / "virtual.toml")
    assert m.source == tmp_path / "calculator.wasm"
    with pytest.raises(ManifestError, match=r"virtual\.toml: \[limits\] fuel"):
        parse_manifest((MINIMAL + "[limits]\nfuel = 0\n").encode(), tmp_path / "virtual.toml")


# --- Narrowing -------------------------------------------------------------------------------


@pytest.fixture
def full(tmp_path: Path) -> Manifest:
    return load_manifest(write(tmp_path, FULL))


def test_an_empty_policy_changes_nothing(full: Manifest) -> None:
    assert full.narrowed(HostPolicy()) == full


def test_grants_are_what_both_allow(full: Manifest) -> None:
    wide = HostPolicy(loas={"core", "wasi", "messaging", "state"})
    assert full.narrowed(wide).loas == ("core", "wasi")  # never more than the manifest asks


def test_a_forbidden_loa_is_refused(full: Manifest) -> None:
    with pytest.raises(ManifestError) as info:
        full.narrowed(HostPolicy(loas=["core", "messaging"]))
    assert str(info.value) == (
        f"{full.path}: [grants] loas: the host policy does not allow Loa 'wasi' (it allows: "
        "core, messaging); remove it from the manifest, or allow it in the host's policy"
    )
    with pytest.raises(ManifestError, match=r"allow Loas 'core', 'wasi' \(it allows: none\)"):
        full.narrowed(HostPolicy(loas=()))


def test_smaller_limits_win(full: Manifest) -> None:
    tight = full.narrowed(HostPolicy(timeout=0.5, fuel=10, max_memory="1 MiB"))
    assert tight.limits == Limits(timeout=0.5, fuel=10, max_memory=1 << 20)
    loose = full.narrowed(HostPolicy(timeout=60, fuel=10**12, max_memory=1 << 30))
    assert loose.limits == full.limits
    assert isinstance(full.narrowed(HostPolicy(timeout=1)).limits.timeout, float)


def test_a_manifest_without_limits_gets_the_policy_s(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, MINIMAL))
    capped = m.narrowed(HostPolicy(timeout=3, fuel=1000, max_memory=65536))
    assert capped.limits == Limits(timeout=3.0, fuel=1000, max_memory=65536)
    assert m.narrowed(HostPolicy()).limits == Limits()


def test_rw_becomes_ro_unless_allowed(full: Manifest) -> None:
    ro = full.narrowed(HostPolicy(allow_rw=False))
    assert [d.mode for d in ro.wasi.dirs] == ["ro", "ro"]
    assert [d.mode for d in full.narrowed(HostPolicy(allow_rw=True)).wasi.dirs] == ["ro", "rw"]


def test_dirs_must_be_inside_the_allowed_ones(full: Manifest, tmp_path: Path) -> None:
    assert full.narrowed(HostPolicy(wasi_dirs=[tmp_path])).wasi.dirs == full.wasi.dirs
    assert full.narrowed(HostPolicy(wasi_dirs=tmp_path)).wasi.dirs == full.wasi.dirs
    both = [tmp_path / "data", tmp_path / "out"]
    assert full.narrowed(HostPolicy(wasi_dirs=both)).wasi.dirs == full.wasi.dirs
    with pytest.raises(ManifestError) as info:
        full.narrowed(HostPolicy(wasi_dirs=[tmp_path / "data"]))
    assert str(info.value).startswith(
        f"{full.path}: [wasi] dirs[1].host: {tmp_path / 'out'} is outside the directories "
        f"the host policy allows ({tmp_path / 'data'})"
    )
    with pytest.raises(ManifestError, match=r"dirs\[0\]\.host: .* allows \(none\)"):
        full.narrowed(HostPolicy(wasi_dirs=()))


def test_dot_dot_and_symlinks_cannot_escape(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "secret").mkdir()
    (allowed / "link").symlink_to(tmp_path / "secret")
    policy = HostPolicy(wasi_dirs=[allowed])
    for host in ("allowed/../secret", "allowed/link", "allowed/link/sub"):
        text = MINIMAL + f'[wasi]\ndirs = [{{ host = "{host}", guest = "/x" }}]\n'
        m = load_manifest(write(tmp_path, text))
        assert m.wasi.dirs[0].host.is_relative_to(tmp_path / "secret")
        with pytest.raises(ManifestError, match="is outside the directories"):
            m.narrowed(policy)
    text = MINIMAL + '[wasi]\ndirs = [{ host = "allowed/sub/../ok", guest = "/x" }]\n'
    assert load_manifest(write(tmp_path, text)).narrowed(policy).wasi.dirs[0].host == (
        allowed / "ok"
    )


def test_host_policy_validation() -> None:
    assert HostPolicy(max_memory="64 KiB").max_memory == 65536
    assert HostPolicy(loas=["core"]).loas == frozenset({"core"})
    for bad in (
        {"timeout": 0},
        {"timeout": -1},
        {"fuel": 0},
        {"fuel": 1.5},
        {"max_memory": "16 MB"},
        {"max_memory": 0},
        {"loas": "core"},
    ):
        with pytest.raises((ValueError, TypeError)):
            HostPolicy(**bad)


@settings(max_examples=200, deadline=None)
@given(
    loas=st.one_of(st.none(), st.frozensets(st.sampled_from(["core", "wasi", "messaging"]))),
    timeout=st.one_of(st.none(), st.floats(0.001, 100)),
    fuel=st.one_of(st.none(), st.integers(1, 10**8)),
    max_memory=st.one_of(st.none(), st.integers(1, 1 << 32)),
    allow_rw=st.booleans(),
)
def test_a_policy_never_widens(
    tmp_path_factory: pytest.TempPathFactory,
    loas: frozenset[str] | None,
    timeout: float | None,
    fuel: int | None,
    max_memory: int | None,
    allow_rw: bool,
) -> None:
    m = _FULL_CACHE.get("m")
    if m is None:
        m = _FULL_CACHE["m"] = load_manifest(write(tmp_path_factory.mktemp("never"), FULL))
    policy = HostPolicy(
        loas=loas, timeout=timeout, fuel=fuel, max_memory=max_memory, allow_rw=allow_rw
    )
    try:
        n = m.narrowed(policy)
    except ManifestError as exc:
        assert loas is not None and not set(m.loas) <= loas, exc
        return
    assert set(n.loas) <= set(m.loas)
    for field in ("timeout", "fuel", "max_memory"):
        before, after, cap = (getattr(x, field) for x in (m.limits, n.limits, policy))
        if before is not None:
            assert after is not None and after <= before
        if cap is not None:
            assert after is not None and after <= cap
    for old, new in zip(m.wasi.dirs, n.wasi.dirs, strict=True):
        assert new.host == old.host and new.guest == old.guest
        assert not (new.writable and not old.writable)
        assert not (new.writable and not allow_rw)
    assert n.narrowed(policy) == n  # narrowing again changes nothing
    assert (n.raw, n.config, n.wasi.env) == (m.raw, m.config, m.wasi.env)


_FULL_CACHE: dict[str, Manifest] = {}

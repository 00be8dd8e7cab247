"""The fast call path: wasm exports called through ``wasmtime_func_call_unchecked``.

wasmtime-py's ``Func.__call__`` re-reads the function type and builds value arrays on
every call. Here each export's signature is resolved once and a small Python function is
generated for it that range-checks the arguments, stores them into a reused raw-value
buffer and calls the C API directly (ctypes releases the GIL for the call). The private
bindings are guarded: without them the generated function calls the public
``Func.__call__`` instead, with the same checks and the same results.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, cast

import wasmtime

try:
    from wasmtime import _bindings as _b

    _VAL_RAW_SIZE = ctypes.sizeof(_b.wasmtime_val_raw_t)
    # A function pointer without argtypes: the caller passes pre-built ctypes values,
    # which skips per-argument conversion (about a quarter of the call's cost).
    _dll: Any = _b.dll  # type: ignore[attr-defined]
    _RAW_CALL: Any = _dll._FuncPtr(("wasmtime_func_call_unchecked", _dll))
    _RAW_CALL.restype = ctypes.c_void_p  # wasmtime_error_t*, NULL on success
    HAVE_UNCHECKED = _VAL_RAW_SIZE == 16
except (ImportError, AttributeError):  # pragma: no cover - other wasmtime builds
    HAVE_UNCHECKED = False

I32_MIN, I32_MAX = -(2**31), 2**32 - 1
I64_MIN, I64_MAX = -(2**63), 2**64 - 1

#: Converter for an argument the fast path did not accept as-is:
#: ``convert(position, wasm_type, value, temps) -> int | float``; raises on bad input and
#: appends to ``temps`` the guest allocations it made (freed after the call).
Converter = Callable[[int, str, Any, list[int]], Any]
#: Checks a host function's result: ``convert(position, wasm_type, value) -> value``.
ResultConverter = Callable[[int, str, Any], Any]
#: Frees the temporary guest allocations of one call.
Releaser = Callable[[list[int]], None]
#: Raised by a generated caller when the number of arguments is wrong.
ArityHandler = Callable[[int], NoReturn]

# The fast acceptance test, per wasm type, for a host function's result ``a``.
_CHECK = {
    "i32": "{a}.__class__ is not int or not -2147483648 <= {a} <= 4294967295",
    "i64": "{a}.__class__ is not int or not -9223372036854775808 <= {a} <= 18446744073709551615",
    "f32": "{a}.__class__ is not float",
    "f64": "{a}.__class__ is not float",
}
_WRAP = {"i32": (2**31, 2**32), "i64": (2**63, 2**64)}

SUPPORTED = frozenset(("i32", "i64", "f32", "f64"))


def type_name(valtype: wasmtime.ValType) -> str:
    """``"i32"``, ``"i64"``, ``"f32"``, ``"f64"``, ``"v128"``, ``"funcref"`` ..."""
    return str(valtype)


def _raise_failure(error: int | None, trap: int | None) -> NoReturn:
    """Turn the C call's error or trap pointer into wasmtime's own exception objects."""
    if trap:
        ptr = ctypes.cast(ctypes.c_void_p(trap), ctypes.POINTER(_b.wasm_trap_t))
        raise wasmtime.Trap._from_ptr(ptr)
    ptr_e = ctypes.cast(ctypes.c_void_p(error), ctypes.POINTER(_b.wasmtime_error_t))
    raise wasmtime.WasmtimeError._from_ptr(ptr_e)


def _normalizer(
    params: Sequence[str], convert: Converter, arity: ArityHandler
) -> Callable[[tuple[Any, ...]], tuple[list[Any], list[int]]]:
    """Validate and convert all arguments: the slow path, where the clear errors are made.

    Returns the raw values and the guest allocations made for them (strings), which the
    caller releases once the call is over.
    """

    def normalize(args: tuple[Any, ...]) -> tuple[list[Any], list[int]]:
        if len(args) != len(params):
            arity(len(args))
        out = []
        temps: list[int] = []
        for i, (ty, value) in enumerate(zip(params, args, strict=True)):
            v = convert(i, ty, value, temps)
            if ty in _WRAP and v >= _WRAP[ty][0]:
                v -= _WRAP[ty][1]  # unsigned spelling of a negative value
            elif ty == "f32":
                v = ctypes.c_float(v).value  # rounded as the C API does: too large -> inf
            out.append(v)
        return out, temps

    return normalize


_factories: dict[tuple[tuple[str, ...], tuple[str, ...], bool], Callable[..., Any]] = {}

# Typed memoryviews over the raw-value buffer: a store range-checks the value in C (an
# int out of range or of the wrong type raises), and costs a fraction of a struct pack.
# (memoryview format, items of that format per 16-byte raw value)
_SLOT = {"i32": ("i", 4), "i64": ("q", 2), "f32": ("f", 4), "f64": ("d", 2)}


def _caller_factory(
    params: tuple[str, ...], results: tuple[str, ...], fast: bool
) -> Callable[..., Any]:
    """Source for one signature shape, compiled once; instances only bind their values."""
    key = (params, results, fast)
    factory = _factories.get(key)
    if factory is not None:
        return factory
    names = [f"a{i}" for i in range(len(params))]
    lines = ["def make(normalize, release, RAW, CTX, FUNC, BUFADDR, N, TRAP, TRAPP, fail, V):"]
    if fast:
        # Vq, Vi, Vd, Vf: the buffer viewed as i64, i32, f64, f32 items (V maps format -> view)
        used = sorted({_SLOT[t][0] for t in params + results})
        lines += [f"  V{f} = V[{f!r}]" for f in used]
        stores = [
            f"V{_SLOT[ty][0]}[{i * _SLOT[ty][1]}] = {a}"
            for i, (a, ty) in enumerate(zip(names, params, strict=True))
        ]
        lines.append(f"  def call({', '.join(names)}):")
        if params:
            lines += ["    try:", *(f"        {st}" for st in stores), "        tmp = None"]
            lines += [
                "    except Exception:",
                f"        ({''.join(a + ', ' for a in names)}), tmp = "
                f"normalize(({''.join(a + ', ' for a in names)}))",
                *(f"        {st}" for st in stores),
            ]
        else:
            lines.append("    tmp = None")
        lines += [
            "    err = RAW(CTX, FUNC, BUFADDR, N, TRAPP)",
            "    if tmp: release(tmp)",
            "    if err or TRAP.value:",
            "        t = TRAP.value; TRAP.value = None; fail(err, t)",
        ]
        outs = [f"V{_SLOT[ty][0]}[{i * _SLOT[ty][1]}]" for i, ty in enumerate(results)]
    else:  # FUNC is the wasmtime.Func, CTX the Store
        lines += [
            "  def call(*args):",
            "    vals, tmp = normalize(args)",
            "    try:",
            "        r = FUNC(CTX, *vals)",
            "    finally:",
            "        if tmp: release(tmp)",
        ]
        outs = ["r"] if len(results) == 1 else [f"r[{i}]" for i in range(len(results))]
    if not results:
        lines.append("    return None")
    elif len(results) == 1:
        lines.append(f"    return {outs[0]}")
    else:
        lines.append(f"    return ({', '.join(outs)},)")
    lines.append("  return call")
    ns: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<vudo call {params}->{results}>", "exec"), ns)
    made: Callable[..., Any] = ns["make"]
    _factories[key] = made
    return made


def build_caller(
    store: wasmtime.Store,
    func: wasmtime.Func,
    params: Sequence[str],
    results: Sequence[str],
    convert: Converter,
    arity: ArityHandler,
    release: Releaser,
    *,
    unchecked: bool = True,
) -> Callable[..., Any]:
    """A function ``f(*args)`` calling ``func`` with checked, converted arguments.

    Traps surface as ``wasmtime.Trap`` and engine errors as ``wasmtime.WasmtimeError``;
    the caller maps them. The result is ``None``, one value or a tuple. On the fast path a
    wrong number of arguments raises Python's own TypeError (the caller words it).
    """
    params, results = tuple(params), tuple(results)
    if not set(params) | set(results) <= SUPPORTED:
        raise ValueError("only i32, i64, f32 and f64 parameters and results are supported")
    normalize = _normalizer(params, convert, arity)
    fast = unchecked and HAVE_UNCHECKED
    make = _caller_factory(params, results, fast)
    if not fast:
        return make(normalize, release, None, store, func, None, None, None, None, None, None)  # type: ignore[no-any-return]
    slots = max(len(params), len(results), 1)
    buf = ctypes.create_string_buffer(slots * _VAL_RAW_SIZE)
    raw = memoryview(buf).cast("B")
    trap = ctypes.c_void_p()
    call = make(
        normalize,
        release,
        _RAW_CALL,
        ctypes.c_void_p(ctypes.cast(store._context(), ctypes.c_void_p).value),
        ctypes.c_void_p(ctypes.addressof(func._func)),
        ctypes.c_void_p(ctypes.addressof(buf)),
        ctypes.c_size_t(slots),
        trap,
        ctypes.c_void_p(ctypes.addressof(trap)),
        _raise_failure,
        {f: raw.cast(f) for f in ("i", "q", "f", "d")},
    )
    # the raw pointers above live as long as these
    call.__vudo_keep__ = (func, store, buf)
    return call  # type: ignore[no-any-return]


def get_export(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> Any:
    """One export of ``instance`` by name (None if absent), without wrapping all of them."""
    if not HAVE_UNCHECKED:
        return instance.exports(store).get(name)
    from wasmtime._extern import wrap_extern

    raw = name.encode()
    item = _b.wasmtime_extern_t()
    if not _b.wasmtime_instance_export_get(
        store._context(), ctypes.byref(instance._instance), raw, len(raw), ctypes.byref(item)
    ):
        return None
    return wrap_extern(item)


# ---- host functions (wasm -> Python) -------------------------------------------------------

#: ``resolve(context_address) -> callable`` finds the per-instance host callable;
#: ``on_error(context_address, exc) -> str`` records the exception and returns a trap message.
Resolver = Callable[[int], Callable[..., Any]]
ErrorHook = Callable[[int, BaseException], str]

if HAVE_UNCHECKED:
    _HOST_CB: Any = ctypes.CFUNCTYPE(
        ctypes.c_size_t,  # wasm_trap_t* or 0
        ctypes.c_void_p,  # env
        ctypes.c_void_p,  # wasmtime_caller_t*
        ctypes.POINTER(ctypes.c_int64),  # wasmtime_val_raw_t*, 16 bytes each
        ctypes.c_size_t,
    )
    _CALLER_CONTEXT: Any = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(
        ctypes.cast(_b._wasmtime_caller_context, ctypes.c_void_p).value or 0
    )
    _NO_FINALIZER: Any = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()  # NULL: nothing to free
    HAVE_UNCHECKED_HOST = hasattr(_b, "wasmtime_linker_define_func_unchecked")
else:  # pragma: no cover
    HAVE_UNCHECKED_HOST = False


def new_trap(message: str) -> int:
    """A fresh ``wasm_trap_t*`` (as an address) carrying ``message``, owned by the engine."""
    raw = message.encode("utf-8", "replace")
    return ctypes.cast(_b.wasmtime_trap_new(raw, len(raw)), ctypes.c_void_p).value or 0


_keepalive: list[Any] = []  # trampolines live as long as the process: linkers may outlive us


def define_host_func(
    linker: wasmtime.Linker,
    module: str,
    name: str,
    params: Sequence[str],
    results: Sequence[str],
    resolve: Resolver,
    on_error: ErrorHook,
    convert: ResultConverter,
    *,
    unchecked: bool = True,
) -> None:
    """Define ``module.name`` in ``linker`` as a host function dispatched per instance.

    The callable is found per call from the caller's store context, so one linker (and one
    InstancePre) serves every instance. Results are range-checked like call arguments.
    """
    if not set(params) | set(results) <= SUPPORTED:
        raise ValueError("only i32, i64, f32 and f64 host function values are supported")
    ftype = wasmtime.FuncType([_VALTYPES[p]() for p in params], [_VALTYPES[r]() for r in results])
    fast = unchecked and HAVE_UNCHECKED_HOST
    ctx_of = _CALLER_CONTEXT if fast else _public_context

    def failure(caller: Any, exc: BaseException) -> str:
        """The trap message for ``exc``. Never raises: an exception escaping a ctypes
        callback is dropped and the callback's garbage result is taken as a trap pointer."""
        try:
            return on_error(ctx_of(caller), exc)
        except BaseException:
            return f"host function raised {type(exc).__name__} (its message could not be shown)"

    ns: dict[str, Any] = {
        "resolve": resolve,
        "failure": failure,
        "convert": convert,
        "CTXOF": ctx_of,
        "CAST": ctypes.cast,
        "PF64": ctypes.POINTER(ctypes.c_double),
        "PF32": ctypes.POINTER(ctypes.c_float),
    }
    if fast:
        decoded = []
        for i, ty in enumerate(params):
            if ty == "i64":
                decoded.append(f"args[{2 * i}]")
            elif ty == "i32":
                decoded.append(f"((args[{2 * i}] & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000")
            elif ty == "f64":
                decoded.append(f"CAST(args, PF64)[{2 * i}]")
            else:
                decoded.append(f"CAST(args, PF32)[{4 * i}]")
        lines = [
            "def tramp(env, caller, args, nargs):",
            "    try:",
            f"        r = resolve(CTXOF(caller))({', '.join(decoded)})",
        ]
        lines += _result_lines(results, fast=True)
        lines += [
            "        return 0",
            "    except BaseException as e:",
            "        return new_trap(failure(caller, e))",
        ]
        ns["new_trap"] = new_trap
    else:
        names = [f"a{i}" for i in range(len(params))]
        lines = [
            f"def tramp(caller, {''.join(n + ', ' for n in names)}):",
            "    try:",
            f"        r = resolve(CTXOF(caller))({', '.join(names)})",
        ]
        lines += _result_lines(results, fast=False)
        lines += [
            "    except BaseException as e:",
            "        raise wasmtime.Trap(failure(caller, e)) from None",
        ]
        ns["wasmtime"] = wasmtime
    exec(compile("\n".join(lines), f"<vudo host {module}.{name}>", "exec"), ns)
    tramp = ns["tramp"]
    if not fast:
        linker.define_func(module, name, ftype, tramp, access_caller=True)
        return
    callback = _HOST_CB(tramp)
    _keepalive.append(callback)
    m, n = module.encode(), name.encode()
    err = _b.wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        m,
        len(m),
        n,
        len(n),
        ftype.ptr(),
        ctypes.cast(callback, _b.wasmtime_func_unchecked_callback_t),
        None,
        _NO_FINALIZER,
    )
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)


def _result_lines(results: Sequence[str], *, fast: bool) -> list[str]:
    """Code that checks the host function's return value ``r`` and stores it."""
    if not results:
        return []
    lines = []
    outs = ["r"] if len(results) == 1 else [f"r{i}" for i in range(len(results))]
    if len(results) > 1:
        lines.append(f"        {', '.join(outs)} = r")
    for i, (o, ty) in enumerate(zip(outs, results, strict=True)):
        lines.append(f"        if {_CHECK[ty].format(a=o)}: {o} = convert({i}, {ty!r}, {o})")
        if fast:
            if ty in ("i32", "i64"):
                lines.append(f"        args[{2 * i}] = {o}")
            elif ty == "f64":
                lines.append(f"        CAST(args, PF64)[{2 * i}] = {o}")
            else:
                lines.append(f"        CAST(args, PF32)[{4 * i}] = {o}")
        elif ty == "i32":
            lines.append(f"        if {o} > 2147483647: {o} -= 4294967296")
        elif ty == "i64":
            lines.append(f"        if {o} > 9223372036854775807: {o} -= 18446744073709551616")
    if not fast:
        lines.append(
            f"        return {outs[0] if len(outs) == 1 else '(' + ', '.join(outs) + ',)'}"
        )
    return lines


def _public_context(caller: wasmtime.Caller) -> int:
    return ctypes.cast(caller._context(), ctypes.c_void_p).value or 0


def store_address(store: wasmtime.Store) -> int:
    """The store's context address: the key host calls use to find their instance."""
    return ctypes.cast(store._context(), ctypes.c_void_p).value or 0


_VALTYPES: dict[str, Callable[[], wasmtime.ValType]] = {
    "i32": wasmtime.ValType.i32,
    "i64": wasmtime.ValType.i64,
    "f32": wasmtime.ValType.f32,
    "f64": wasmtime.ValType.f64,
}


# ---- resetting an instance's state (InstanceManager.release) -------------------------------

if HAVE_UNCHECKED:
    _MEM_DATA: Any = _dll._FuncPtr(("wasmtime_memory_data", _dll))
    _MEM_DATA.restype = ctypes.c_void_p
    _MEM_SIZE: Any = _dll._FuncPtr(("wasmtime_memory_data_size", _dll))
    _MEM_SIZE.restype = ctypes.c_size_t
    _GLOBAL_SET: Any = _dll._FuncPtr(("wasmtime_global_set", _dll))
    _GLOBAL_SET.restype = ctypes.c_void_p  # wasmtime_error_t*, NULL on success
    _NUMERIC_KINDS = {0, 1, 2, 3}  # WASMTIME_I32, _I64, _F32, _F64 (wasmtime/_ffi.py)


def state_resetter(
    store: wasmtime.Store,
    memories: Sequence[tuple[wasmtime.Memory, Any]],
    globals_: Sequence[tuple[wasmtime.Global, Any]],
) -> Callable[[], bool]:
    """A function writing ``(memory, image)`` images and ``(global, value)`` values back
    into one instance; it returns False, having done nothing more, when a memory's size
    differs from its image's (it grew). About 1 µs plus the memcpy: wasmtime-py's
    ``Global.set_value`` alone costs several µs, as it re-reads the global's type."""
    if not HAVE_UNCHECKED:  # pragma: no cover - other wasmtime builds

        def reset_public() -> bool:
            for mem, image in memories:
                if mem.data_len(store) != len(image):
                    return False
                ctypes.memmove(mem.data_ptr(store), image, len(image))
            for g, value in globals_:
                g.set_value(store, value)
            return True

        return reset_public

    ctx = store._context()
    # A memory's base moves only when it grows, and a grown memory is never reset: read
    # each base once, and its size (the check that it did not grow) on every reset.
    mems = [
        (ctypes.byref(m._memory), _MEM_DATA(ctx, ctypes.byref(m._memory)), image, len(image))
        for m, image in memories
    ]
    raws: list[tuple[Any, Any, Any]] = []
    for g, value in globals_:
        raw = wasmtime.Val._convert_to_raw(store, g.type(store).content, value)
        if (
            cast(int, raw.kind) not in _NUMERIC_KINDS
        ):  # references must be rooted per call: slow path
            _b.wasmtime_val_unroot(ctypes.byref(raw))
            raws.append((g, value, None))
        else:
            raws.append((g, raw, ctypes.byref(g._global)))
    keep = (store, memories, globals_)
    memmove = ctypes.memmove

    def reset() -> bool:
        for ref, base, image, size in mems:
            if _MEM_SIZE(ctx, ref) != size:
                return False
            memmove(base, image, size)
        for g, raw, ref in raws:
            if ref is None:
                g.set_value(store, raw)
            elif _GLOBAL_SET(ctx, ref, ctypes.byref(raw)):  # pragma: no cover - type fixed
                return False
        return True

    reset.__vudo_keep__ = keep  # type: ignore[attr-defined]
    return reset

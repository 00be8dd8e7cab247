;; abi_probe: imports every function of the core Loa (the vudo_* host ABI) and
;; exports one small function per import, so a host can check each of them.
;; Most imports come from "loa" (what the DOL compiler emits); a few come from
;; "vudo" (the ABI specification's name) and "env" (the TypeScript runtime's),
;; so one module proves that all three module names are served.
;;
;; Exported functions that take a `string` receive an i32 pointer to a DOL
;; length-prefixed string and hand the host its raw bytes as (s + 4, load32(s)).
;; Integer parameters and results keep i32 unwidened, as older compilers do.
(module
  (import "loa" "vudo_print" (func $vudo_print (param i32 i32)))
  (import "loa" "vudo_println" (func $vudo_println (param i32 i32)))
  (import "loa" "vudo_log" (func $vudo_log (param i32 i32 i32)))
  (import "loa" "vudo_error" (func $vudo_error (param i32 i32)))
  (import "vudo" "vudo_debug" (func $vudo_debug (param i32 i32)))
  (import "loa" "vudo_alloc" (func $vudo_alloc (param i32) (result i32)))
  (import "loa" "vudo_free" (func $vudo_free (param i32 i32)))
  (import "loa" "vudo_realloc" (func $vudo_realloc (param i32 i32 i32) (result i32)))
  (import "loa" "vudo_now" (func $vudo_now (result i64)))
  (import "loa" "vudo_monotonic_now" (func $vudo_monotonic_now (result i64)))
  (import "vudo" "vudo_sleep" (func $vudo_sleep (param i32)))
  (import "env" "vudo_random" (func $vudo_random (result f64)))
  (import "env" "vudo_random_bytes" (func $vudo_random_bytes (param i32 i32)))
  (import "loa" "vudo_emit_effect" (func $vudo_emit_effect (param i32 i32 i32) (result i32)))
  (import "loa" "vudo_subscribe" (func $vudo_subscribe (param i32 i32) (result i32)))
  (import "env" "vudo_breakpoint" (func $vudo_breakpoint))
  (import "loa" "vudo_assert" (func $vudo_assert (param i32 i32 i32)))
  (import "loa" "vudo_panic" (func $vudo_panic (param i32 i32)))
  (import "vudo" "vudo_abort" (func $vudo_abort (param i32 i32 i32 i32 i32)))

  (memory (export "memory") 1 256)

  ;; Literals at offset 0, each [u32 LE length][UTF-8 bytes] padded to 4:
  ;;   0 "hello from abi_probe"  24 "abort requested"  44 "abi_probe.dol"
  ;;  64 "run_all"               76 "effect"
  (data (i32.const 0)
    "\14\00\00\00hello from abi_probe"
    "\0f\00\00\00abort requested\00"
    "\0d\00\00\00abi_probe.dol\00\00\00"
    "\07\00\00\00run_all\00"
    "\06\00\00\00effect\00\00")

  ;; ---- text -------------------------------------------------------------------

  (func (export "greet")
    (call $vudo_println (i32.const 4) (i32.const 20)))

  (func (export "print") (param $s i32)
    (call $vudo_print
      (i32.add (local.get $s) (i32.const 4)) (i32.load (local.get $s))))

  (func (export "println") (param $s i32)
    (call $vudo_println
      (i32.add (local.get $s) (i32.const 4)) (i32.load (local.get $s))))

  ;; vudo_print on a raw (ptr, len) range, unchecked: for out-of-bounds tests.
  (func (export "raw_print") (param $ptr i32) (param $len i32)
    (call $vudo_print (local.get $ptr) (local.get $len)))

  (func (export "log") (param $level i32) (param $s i32)
    (call $vudo_log (local.get $level)
      (i32.add (local.get $s) (i32.const 4)) (i32.load (local.get $s))))

  (func (export "error") (param $s i32)
    (call $vudo_error
      (i32.add (local.get $s) (i32.const 4)) (i32.load (local.get $s))))

  (func (export "debug") (param $s i32)
    (call $vudo_debug
      (i32.add (local.get $s) (i32.const 4)) (i32.load (local.get $s))))

  ;; ---- host allocation --------------------------------------------------------
  ;; Named host_* so the runtime never mistakes them for an exported guest allocator.

  (func (export "host_alloc") (param $size i32) (result i32)
    (call $vudo_alloc (local.get $size)))

  (func (export "host_free") (param $ptr i32) (param $size i32)
    (call $vudo_free (local.get $ptr) (local.get $size)))

  (func (export "host_realloc") (param $ptr i32) (param $old i32) (param $new i32) (result i32)
    (call $vudo_realloc (local.get $ptr) (local.get $old) (local.get $new)))

  ;; The guest writes `len` copies of `byte` at `ptr` itself.
  (func (export "fill") (param $ptr i32) (param $byte i32) (param $len i32)
    (memory.fill (local.get $ptr) (local.get $byte) (local.get $len)))

  ;; ---- time and randomness ----------------------------------------------------

  (func (export "now") (result i64)
    (call $vudo_now))

  (func (export "monotonic") (result i64)
    (call $vudo_monotonic_now))

  (func (export "sleep") (param $ms i32)
    (call $vudo_sleep (local.get $ms)))

  (func (export "random") (result f64)
    (call $vudo_random))

  (func (export "random_bytes") (param $ptr i32) (param $len i32)
    (call $vudo_random_bytes (local.get $ptr) (local.get $len)))

  ;; ---- effects ----------------------------------------------------------------

  (func (export "emit") (param $kind i32) (param $s i32) (result i32)
    (call $vudo_emit_effect (local.get $kind)
      (i32.add (local.get $s) (i32.const 4)) (i32.load (local.get $s))))

  (func (export "subscribe") (param $s i32) (result i32)
    (call $vudo_subscribe
      (i32.add (local.get $s) (i32.const 4)) (i32.load (local.get $s))))

  ;; ---- debugging and failure --------------------------------------------------

  (func (export "breakpoint")
    (call $vudo_breakpoint))

  (func (export "check") (param $cond i32) (param $s i32)
    (call $vudo_assert (local.get $cond)
      (i32.add (local.get $s) (i32.const 4)) (i32.load (local.get $s))))

  (func (export "panic") (param $s i32)
    (call $vudo_panic
      (i32.add (local.get $s) (i32.const 4)) (i32.load (local.get $s))))

  ;; vudo_abort("abort requested", "abi_probe.dol", line)
  (func (export "abort") (param $line i32)
    (call $vudo_abort
      (i32.const 28) (i32.const 15) (i32.const 48) (i32.const 13) (local.get $line)))

  ;; ---- everything at once -----------------------------------------------------
  ;; Calls each import that does not trap once; returns 1.
  (func (export "run_all") (result i32)
    (local $p i32)
    (call $vudo_println (i32.const 4) (i32.const 20))
    (call $vudo_print (i32.const 68) (i32.const 7))
    (call $vudo_log (i32.const 1) (i32.const 68) (i32.const 7))
    (call $vudo_error (i32.const 68) (i32.const 7))
    (call $vudo_debug (i32.const 68) (i32.const 7))
    (local.set $p (call $vudo_alloc (i32.const 16)))
    (call $vudo_random_bytes (local.get $p) (i32.const 16))
    (local.set $p (call $vudo_realloc (local.get $p) (i32.const 16) (i32.const 32)))
    (call $vudo_free (local.get $p) (i32.const 32))
    (drop (call $vudo_now))
    (drop (call $vudo_monotonic_now))
    (call $vudo_sleep (i32.const 0))
    (drop (call $vudo_random))
    (drop (call $vudo_emit_effect (i32.const 1) (i32.const 80) (i32.const 6)))
    (drop (call $vudo_subscribe (i32.const 80) (i32.const 6)))
    (call $vudo_breakpoint)
    (call $vudo_assert (i32.const 1) (i32.const 68) (i32.const 7))
    (i32.const 1))
)

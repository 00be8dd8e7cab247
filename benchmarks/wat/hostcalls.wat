;; hostcalls: loops that call imported host functions, to time one host call.
(module
  ;; A user host function: (i64) -> i64.
  (import "loa" "host_inc" (func $host_inc (param i64) (result i64)))
  ;; The vudo ABI's print: a raw UTF-8 (ptr, len) range.
  (import "loa" "vudo_print" (func $vudo_print (param i32 i32)))

  (memory (export "memory") 1 256)
  (data (i32.const 0) "Hello, World!")

  ;; host_loop(n): calls host_inc n times, threading its result; returns the last one.
  (func (export "host_loop") (param $n i64) (result i64)
    (local $i i64) (local $acc i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_s (local.get $i) (local.get $n)))
        (local.set $acc (call $host_inc (local.get $acc)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $acc))

  ;; print_loop(n): prints "Hello, World!" (13 bytes at 0) n times.
  (func (export "print_loop") (param $n i64)
    (local $i i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_s (local.get $i) (local.get $n)))
        (call $vudo_print (i32.const 0) (i32.const 13))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next))))
)

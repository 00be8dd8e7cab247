;; loops: long-running, recursive, memory-growing and trapping functions,
;; for timeouts, fuel, memory limits and trap reporting.
(module
  ;; Memory may grow up to the 4 GiB limit of wasm32 so that host limits are
  ;; what stops grow_memory.
  (memory (export "memory") 1 65536)

  ;; spin(): never returns
  (func (export "spin")
    (loop $forever
      (br $forever)))

  ;; fib(n): naive recursion; fib(0) = 0, fib(1) = 1
  (func $fib (export "fib") (param $n i64) (result i64)
    (if (result i64) (i64.lt_s (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else
        (i64.add
          (call $fib (i64.sub (local.get $n) (i64.const 1)))
          (call $fib (i64.sub (local.get $n) (i64.const 2)))))))

  ;; sum_to(n) = 1 + 2 + ... + n, by a loop (0 for n <= 0)
  (func (export "sum_to") (param $n i64) (result i64)
    (local $i i64)
    (local $sum i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_s (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (local.set $sum (i64.add (local.get $sum) (local.get $i)))
        (br $next)))
    (local.get $sum))

  ;; burn(n): n steps of a 64-bit LCG seeded with n; returns the final state.
  ;; Each step depends on the last, so the work cannot be folded away.
  (func (export "burn") (param $n i64) (result i64)
    (local $i i64)
    (local $x i64)
    (local.set $x (local.get $n))
    (block $done
      (loop $next
        (br_if $done (i64.ge_s (local.get $i) (local.get $n)))
        (local.set $x
          (i64.add
            (i64.mul (local.get $x) (i64.const 6364136223846793005))
            (i64.const 1442695040888963407)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $x))

  ;; grow_memory(pages) -> old size in pages, or -1 when refused
  (func (export "grow_memory") (param $pages i32) (result i32)
    (memory.grow (local.get $pages)))

  ;; oob_read(): loads 4 bytes at 0xFFFFFFF0, always out of bounds: traps
  (func (export "oob_read") (result i32)
    (i32.load (i32.const 0xFFFFFFF0)))

  ;; unreachable(): traps at once
  (func (export "unreachable")
    (unreachable))
)

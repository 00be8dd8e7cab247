;; The benchmark workloads as an Extism plugin, written by hand against the Extism
;; kernel ABI: every export is () -> i32 (0 = success); input and output are byte
;; blocks in the kernel's memory, reached through the "extism:host/env" imports.
;; Numbers travel as little-endian u64 in the input and output.
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  ;; User host functions, as the vudo and wasmtime benchmarks define them.
  (import "loa" "host_inc" (func $host_inc (param i64) (result i64)))
  (import "loa" "host_print" (func $host_print (param i64)))

  ;; Plugin-own memory: the message at 0, copies of the input at 65536; grown on demand.
  (memory (export "memory") 2)
  (data (i32.const 0) "Hello, World!")

  ;; Grow the memory so that [0, end) exists.
  (func $ensure (param $end i32)
    (local $have i32)
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq (i32.const -1)
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                               (i32.const 65535))
                                      (i32.const 16))))
          (then (unreachable))))))

  ;; Output one u64.
  (func $out_u64 (param $v i64)
    (local $off i64)
    (local.set $off (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $off) (local.get $v))
    (call $output_set (local.get $off) (i64.const 8)))

  ;; Copy the whole input into plugin memory at 65536, 8 bytes per kernel call; returns its length.
  (func $copy_in (result i32)
    (local $len i64) (local $i i64)
    (local.set $len (call $input_length))
    (call $ensure (i32.add (i32.const 65536) (i32.wrap_i64 (local.get $len))))
    (block $done
      (loop $next
        (br_if $done (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $len)))
        (i64.store (i32.add (i32.const 65536) (i32.wrap_i64 (local.get $i)))
          (call $input_load_u64 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $next)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $len)))
        (i32.store8 (i32.add (i32.const 65536) (i32.wrap_i64 (local.get $i)))
          (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (i32.wrap_i64 (local.get $len)))

  ;; Copy n bytes of plugin memory at 65536 into a fresh kernel block and make it the output.
  (func $copy_out (param $n i32)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $n))))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $i) (i32.const 8)) (local.get $n)))
        (call $store_u64 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
          (i64.load (i32.add (i32.const 65536) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $next)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (call $store_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (i32.const 65536) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $output_set (local.get $off) (i64.extend_i32_u (local.get $n))))

  (func (export "noop") (result i32)
    (i32.const 0))

  ;; add: input = a, b (u64 LE each); output = a + b
  (func (export "add") (result i32)
    (call $out_u64
      (i64.add (call $input_load_u64 (i64.const 0)) (call $input_load_u64 (i64.const 8))))
    (i32.const 0))

  ;; upper: output = input with ASCII a-z made A-Z
  (func (export "upper") (result i32)
    (local $n i32) (local $i i32) (local $b i32) (local $p i32)
    (local.set $n (call $copy_in))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $p (i32.add (i32.const 65536) (local.get $i)))
        (local.set $b (i32.load8_u (local.get $p)))
        (if (i32.lt_u (i32.sub (local.get $b) (i32.const 97)) (i32.const 26))
          (then (i32.store8 (local.get $p) (i32.sub (local.get $b) (i32.const 32)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $copy_out (local.get $n))
    (i32.const 0))

  ;; checksum_echo: the guest reads the input (sum of its bytes, kept in global 0)
  ;; and hands the same block back as the output
  (global $last_sum (mut i64) (i64.const 0))
  (func (export "checksum_echo") (result i32)
    (local $n i32) (local $i i32) (local $sum i64)
    (local.set $n (call $copy_in))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $sum (i64.add (local.get $sum)
          (i64.load8_u (i32.add (i32.const 65536) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (global.set $last_sum (local.get $sum))
    (call $output_set (call $input_offset) (call $input_length))
    (i32.const 0))

  ;; echo: the input block, unread, handed back as the output
  (func (export "echo") (result i32)
    (call $output_set (call $input_offset) (call $input_length))
    (i32.const 0))

  ;; host_loop: input = n; calls host_inc n times threading the value; output = result
  (func (export "host_loop") (result i32)
    (local $n i64) (local $i i64) (local $acc i64)
    (local.set $n (call $input_load_u64 (i64.const 0)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_s (local.get $i) (local.get $n)))
        (local.set $acc (call $host_inc (local.get $acc)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (call $out_u64 (local.get $acc))
    (i32.const 0))

  ;; print_loop: input = n; hands "Hello, World!" (a kernel block) to host_print n times
  (func (export "print_loop") (result i32)
    (local $n i64) (local $i i64) (local $msg i64) (local $j i32)
    (local.set $n (call $input_load_u64 (i64.const 0)))
    (local.set $msg (call $alloc (i64.const 13)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (i32.const 13)))
        (call $store_u8 (i64.add (local.get $msg) (i64.extend_i32_u (local.get $j)))
          (i32.load8_u (local.get $j)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $next)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_s (local.get $i) (local.get $n)))
        (call $host_print (local.get $msg))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (i32.const 0))

  (func $fib (param $n i64) (result i64)
    (if (result i64) (i64.lt_s (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else
        (i64.add
          (call $fib (i64.sub (local.get $n) (i64.const 1)))
          (call $fib (i64.sub (local.get $n) (i64.const 2)))))))

  ;; fib: input = n; output = fib(n)
  (func (export "fib") (result i32)
    (call $out_u64 (call $fib (call $input_load_u64 (i64.const 0))))
    (i32.const 0))

  ;; burn: input = n; output = burn(n) as in spirits/loops.wat
  (func (export "burn") (result i32)
    (local $n i64) (local $i i64) (local $x i64)
    (local.set $n (call $input_load_u64 (i64.const 0)))
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
    (call $out_u64 (local.get $x))
    (i32.const 0))

  ;; mem_kernel: input = nbytes, rounds; output = mem_kernel(nbytes, rounds) as in kernels.wat
  (func (export "mem_kernel") (result i32)
    (call $out_u64
      (call $mem_kernel
        (i32.wrap_i64 (call $input_load_u64 (i64.const 0)))
        (i32.wrap_i64 (call $input_load_u64 (i64.const 8)))))
    (i32.const 0))

  ;; The same loop as kernels.wat mem_kernel.
  (func $mem_kernel (param $nbytes i32) (param $rounds i32) (result i64)
    (local $r i32) (local $p i32) (local $x i64) (local $acc i64)
    (call $ensure (local.get $nbytes))
    (block $rdone
      (loop $rnext
        (br_if $rdone (i32.ge_u (local.get $r) (local.get $rounds)))
        (local.set $p (i32.const 0))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $p) (local.get $nbytes)))
            (local.set $x (i64.load (local.get $p)))
            (local.set $acc (i64.add (i64.rotl (local.get $acc) (i64.const 5)) (local.get $x)))
            (i64.store (local.get $p)
              (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005))
                (i64.extend_i32_u (local.get $p))))
            (local.set $p (i32.add (local.get $p) (i32.const 8)))
            (br $next)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rnext)))
    (local.get $acc))
)

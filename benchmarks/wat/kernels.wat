;; kernels: benchmark workloads without imports, in the DOL string ABI
;; (a string is an i32 pointer to [u32 LE byte length][UTF-8 bytes]).
(module
  ;; 260 pages (16.25 MiB): room for the 16 MiB bulk copy and the memory-bound loop.
  (memory (export "memory") 260 1024)

  ;; upper(s) -> pointer to s with ASCII a-z made A-Z, written to the scratch string at
  ;; 0 (up to 64 KiB); nothing is allocated, so it can run any number of times.
  (func (export "upper") (param $s i32) (result i32)
    (local $len i32) (local $i i32) (local $b i32)
    (local.set $len (i32.load (local.get $s)))
    (if (i32.gt_u (local.get $len) (i32.const 65532)) (then (unreachable)))
    (i32.store (i32.const 0) (local.get $len))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $b (i32.load8_u offset=4 (i32.add (local.get $s) (local.get $i))))
        (if (i32.lt_u (i32.sub (local.get $b) (i32.const 97)) (i32.const 26))
          (then (local.set $b (i32.sub (local.get $b) (i32.const 32)))))
        (i32.store8 offset=4 (local.get $i) (local.get $b))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; mem_kernel(nbytes, rounds): every round loads, mixes and stores each i64 of
  ;; [0, nbytes); returns a running hash, so nothing can be folded away.
  (func $mem_kernel (export "mem_kernel") (param $nbytes i32) (param $rounds i32) (result i64)
    (local $r i32) (local $p i32) (local $x i64) (local $acc i64)
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

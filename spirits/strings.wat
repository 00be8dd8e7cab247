;; strings: DOL's string ABI. A string is an i32 pointer to
;; [u32 LE byte length][UTF-8 bytes], padded to 4. Pointer 0 is a valid string.
(module
  (memory (export "memory") 1 256)

  ;; Global 0: HEAP_BASE (mutable), global 1: HEAP_END, as in every DOL Spirit.
  (global $HEAP_BASE (mut i32) (i32.const 1024))
  (global $HEAP_END i32 (i32.const 65536))

  ;; Literals: "hello" at 0, "wörld" (6 bytes, ö = c3 b6) at 16,
  ;; and an invalid UTF-8 byte string (ff fe) at 32.
  (data (i32.const 0) "\05\00\00\00hello\00\00\00")
  (data (i32.const 16) "\06\00\00\00w\c3\b6rld\00\00")
  (data (i32.const 32) "\02\00\00\00\ff\fe\00\00")

  ;; Bump allocator, same algorithm as the DOL compiler's internal `alloc`.
  (func $alloc (param $size i32) (param $align i32) (result i32)
    (local $ptr i32)
    (local $end i32)
    (local.set $ptr
      (i32.and
        (i32.sub (i32.add (global.get $HEAP_BASE) (local.get $align)) (i32.const 1))
        (i32.xor (i32.sub (local.get $align) (i32.const 1)) (i32.const -1))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (global.get $HEAP_END))
      (then (return (i32.const 0))))
    (global.set $HEAP_BASE (local.get $end))
    (local.get $ptr))

  ;; greeting() -> pointer to "hello" (0)
  (func (export "greeting") (result i32)
    (i32.const 0))

  ;; other() -> pointer to "wörld" (16)
  (func (export "other") (result i32)
    (i32.const 16))

  ;; invalid_utf8() -> pointer to a string whose bytes are ff fe (32)
  (func (export "invalid_utf8") (result i32)
    (i32.const 32))

  ;; str_len(s) -> byte length of s
  (func (export "str_len") (param $s i32) (result i64)
    (i64.extend_i32_u (i32.load (local.get $s))))

  ;; first_byte(s) -> first UTF-8 byte of s (unchecked: reads the byte even if s is empty)
  (func (export "first_byte") (param $s i32) (result i32)
    (i32.load8_u offset=4 (local.get $s)))

  ;; checksum(s) -> sum of the bytes of s
  (func (export "checksum") (param $s i32) (result i64)
    (local $i i32)
    (local $len i32)
    (local $sum i64)
    (local.set $len (i32.load (local.get $s)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $sum
          (i64.add (local.get $sum)
            (i64.extend_i32_u
              (i32.load8_u offset=4 (i32.add (local.get $s) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $sum))

  ;; echo(s) -> s
  (func (export "echo") (param $s i32) (result i32)
    (local.get $s))

  ;; upper(s) -> new string on the heap: s with ASCII a-z made A-Z.
  ;; Traps (unreachable) when the heap is exhausted, since 0 is a valid string.
  (func (export "upper") (param $s i32) (result i32)
    (local $len i32)
    (local $out i32)
    (local $i i32)
    (local $b i32)
    (local.set $len (i32.load (local.get $s)))
    (local.set $out (call $alloc (i32.add (local.get $len) (i32.const 4)) (i32.const 4)))
    (if (i32.eqz (local.get $out))
      (then (unreachable)))
    (i32.store (local.get $out) (local.get $len))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $b (i32.load8_u offset=4 (i32.add (local.get $s) (local.get $i))))
        ;; 'a'..'z' is 97..122: (b - 97) < 26 unsigned
        (if (i32.lt_u (i32.sub (local.get $b) (i32.const 97)) (i32.const 26))
          (then (local.set $b (i32.sub (local.get $b) (i32.const 32)))))
        (i32.store8 offset=4 (i32.add (local.get $out) (local.get $i)) (local.get $b))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $out))
)

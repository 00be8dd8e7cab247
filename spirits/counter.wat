;; counter: the DOL `Counter` gene, laid out as the DOL compiler lays it out.
(module
  (memory (export "memory") 1 256)

  ;; Global 0: HEAP_BASE, next free address (mutable). Global 1: HEAP_END.
  (global $HEAP_BASE (mut i32) (i32.const 1024))
  (global $HEAP_END i32 (i32.const 65536))

  ;; Internal bump allocator (not exported), as the DOL compiler emits it:
  ;; ptr = (HEAP_BASE + align - 1) & ~(align - 1); 0 when ptr + size > HEAP_END.
  ;; Never grows memory, never frees.
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

  ;; new_Counter(value) -> ptr: 8 bytes, align 8, value@0 (i64 LE).
  ;; Returns 0 without storing when the heap is exhausted.
  (func (export "new_Counter") (param $value i64) (result i32)
    (local $self i32)
    (local.set $self (call $alloc (i32.const 8) (i32.const 8)))
    (if (local.get $self)
      (then (i64.store (local.get $self) (local.get $value))))
    (local.get $self))

  ;; Counter.increment(self) -> value + 1, stored back.
  (func (export "Counter.increment") (param $self i32) (result i64)
    (local $v i64)
    (local.set $v (i64.add (i64.load (local.get $self)) (i64.const 1)))
    (i64.store (local.get $self) (local.get $v))
    (local.get $v))

  ;; Counter.get_value(self) -> value
  (func (export "Counter.get_value") (param $self i32) (result i64)
    (i64.load (local.get $self)))

  ;; Counter.add(self, n) -> value + n (not stored)
  (func (export "Counter.add") (param $self i32) (param $n i64) (result i64)
    (i64.add (i64.load (local.get $self)) (local.get $n)))

  ;; add_numbers(a, b) -> a + b
  (func (export "add_numbers") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b)))
)

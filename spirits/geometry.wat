;; geometry: gene layouts in linear memory (C-like, little-endian).
;;   Point { x: i64, y: i64 }                 size 16, align 8: x@0 y@8
;;   Mixed { count: i32, active: bool, value: f64 }
;;                                            size 16, align 8: count@0 active@4 value@8
(module
  (memory (export "memory") 1 256)

  ;; Global 0: HEAP_BASE (mutable), global 1: HEAP_END.
  (global $HEAP_BASE (mut i32) (i32.const 1024))
  (global $HEAP_END i32 (i32.const 65536))

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

  ;; new_Point(x, y) -> ptr (0 without storing when the heap is exhausted)
  (func (export "new_Point") (param $x i64) (param $y i64) (result i32)
    (local $self i32)
    (local.set $self (call $alloc (i32.const 16) (i32.const 8)))
    (if (local.get $self)
      (then
        (i64.store offset=0 (local.get $self) (local.get $x))
        (i64.store offset=8 (local.get $self) (local.get $y))))
    (local.get $self))

  ;; Point.sum(self) -> x + y
  (func (export "Point.sum") (param $self i32) (result i64)
    (i64.add
      (i64.load offset=0 (local.get $self))
      (i64.load offset=8 (local.get $self))))

  ;; Point.scale(self, k): x *= k, y *= k, stored in place; no result
  (func (export "Point.scale") (param $self i32) (param $k i64)
    (i64.store offset=0 (local.get $self)
      (i64.mul (i64.load offset=0 (local.get $self)) (local.get $k)))
    (i64.store offset=8 (local.get $self)
      (i64.mul (i64.load offset=8 (local.get $self)) (local.get $k))))

  ;; new_Mixed(count, active, value) -> ptr. The compiler widens the i32
  ;; parameter `count` to i64 in the signature; the field stays an i32.
  (func (export "new_Mixed") (param $count i64) (param $active i32) (param $value f64)
    (result i32)
    (local $self i32)
    (local.set $self (call $alloc (i32.const 16) (i32.const 8)))
    (if (local.get $self)
      (then
        (i32.store offset=0 (local.get $self) (i32.wrap_i64 (local.get $count)))
        (i32.store offset=4 (local.get $self) (local.get $active))
        (f64.store offset=8 (local.get $self) (local.get $value))))
    (local.get $self))

  ;; Mixed.describe(self) -> count + value, plus 1 when active
  (func (export "Mixed.describe") (param $self i32) (result f64)
    (f64.add
      (f64.add
        (f64.convert_i32_s (i32.load offset=0 (local.get $self)))
        (f64.load offset=8 (local.get $self)))
      (select (f64.const 1) (f64.const 0) (i32.load offset=4 (local.get $self)))))
)

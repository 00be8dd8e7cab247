;; calculator: pure arithmetic, no memory and no imports.
;; Signatures follow the current DOL compiler: integers are i64, floats f64,
;; bool is i32 (0 / 1).
(module
  ;; add(a, b) = a + b
  (func (export "add") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b)))

  ;; sub(a, b) = a - b
  (func (export "sub") (param $a i64) (param $b i64) (result i64)
    (i64.sub (local.get $a) (local.get $b)))

  ;; mul(a, b) = a * b (wraps on overflow)
  (func (export "mul") (param $a i64) (param $b i64) (result i64)
    (i64.mul (local.get $a) (local.get $b)))

  ;; div(a, b) = a / b, truncated; traps on b == 0 (and on MIN / -1)
  (func (export "div") (param $a i64) (param $b i64) (result i64)
    (i64.div_s (local.get $a) (local.get $b)))

  ;; neg(a) = -a
  (func (export "neg") (param $a i64) (result i64)
    (i64.sub (i64.const 0) (local.get $a)))

  ;; average(a, b) = (a + b) / 2
  (func (export "average") (param $a f64) (param $b f64) (result f64)
    (f64.div (f64.add (local.get $a) (local.get $b)) (f64.const 2)))

  ;; noop(): no parameters, no results
  (func (export "noop"))

  ;; divmod(a, b) = (a / b, a % b): two results (multi-value)
  (func (export "divmod") (param $a i64) (param $b i64) (result i64 i64)
    (i64.div_s (local.get $a) (local.get $b))
    (i64.rem_s (local.get $a) (local.get $b)))

  ;; is_even(a) -> bool as i32
  (func (export "is_even") (param $a i64) (result i32)
    (i64.eqz (i64.and (local.get $a) (i64.const 1))))
)

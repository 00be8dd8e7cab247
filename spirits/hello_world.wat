;; hello_world: the shape the DOL compiler gives a Spirit that prints a literal.
(module
  ;; `sex fun vudo_print(ptr: i32, len: i32)` becomes an import from "loa".
  (import "loa" "vudo_print" (func $vudo_print (param i32 i32)))

  (memory (export "memory") 1 256)

  ;; String literals sit at offset 0 as [u32 LE length][UTF-8 bytes], padded to 4.
  ;; "Hello, World!" is 13 bytes: pointer 0, text at 4..17, padding to 20.
  (data (i32.const 0) "\0d\00\00\00Hello, World!\00\00\00")

  ;; greet(): print the literal; the host receives the raw (ptr, len) range.
  (func (export "greet")
    (call $vudo_print (i32.const 4) (i32.const 13)))

  ;; greet_name(name): name is a pointer to a length-prefixed string;
  ;; print its bytes with one call: vudo_print(name + 4, load32(name)).
  (func (export "greet_name") (param $name i32)
    (call $vudo_print
      (i32.add (local.get $name) (i32.const 4))
      (i32.load (local.get $name))))
)

;; pingpong: numbered messages between Spirits of one Séance, through the
;; messaging Loa in its TypeScript-runtime variants (a `channel` argument,
;; the receiver's own buffers for sender and payload).
;;
;; A message carries one i64, little-endian, in an 8-byte payload. Names
;; arrive as DOL strings: an i32 pointer to [u32 length][UTF-8 bytes].
(module
  ;; vudo_send(to_ptr, to_len, channel, payload_ptr, payload_len) -> 1 sent, 0 refused
  (import "loa" "vudo_send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  ;; vudo_recv(channel, from_buf, from_max, buf, buf_max) -> payload length,
  ;; -1 nothing waiting, -2 a buffer is too small (the message stays queued)
  (import "loa" "vudo_recv" (func $recv (param i32 i32 i32 i32 i32) (result i32)))
  ;; vudo_pending(channel) -> messages waiting
  (import "loa" "vudo_pending" (func $pending (param i32) (result i32)))
  ;; vudo_broadcast(ptr, len) -> how many members accepted it
  (import "loa" "vudo_broadcast" (func $broadcast (param i32 i32) (result i32)))

  (memory (export "memory") 1 256)

  ;; Fixed buffers, below the guest heap (which starts at 1024):
  ;;   0   SENDER  [u32 length][up to 60 bytes]: who sent the last message received
  ;;   64  INBOX   8 bytes: payload of the last message received
  ;;   72  OUTBOX  8 bytes: payload being sent
  ;;   80  FROM    60 bytes: the sender's name while a message is being received
  (global $SENDER_MAX i32 (i32.const 60))

  ;; Bytes before the first 0 in [ptr, ptr + max).
  (func $strlen (param $ptr i32) (param $max i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $max)))
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $ptr) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))

  ;; send_number(to, channel, n) -> bool: sends n to the Spirit named `to`.
  (func $send_number (export "send_number")
    (param $to i32) (param $channel i64) (param $n i64) (result i32)
    (i64.store (i32.const 72) (local.get $n))
    (call $send
      (i32.add (local.get $to) (i32.const 4))
      (i32.load (local.get $to))
      (i32.wrap_i64 (local.get $channel))
      (i32.const 72)
      (i32.const 8)))

  ;; recv_number(channel) -> the next number, -1 when none is waiting, -2 when the
  ;; message does not fit (it stays queued). A shorter payload is zero-extended.
  (func $recv_number (export "recv_number") (param $channel i64) (result i64)
    (local $len i32)
    (memory.fill (i32.const 80) (i32.const 0) (global.get $SENDER_MAX))
    (i64.store (i32.const 64) (i64.const 0))
    (local.set $len
      (call $recv
        (i32.wrap_i64 (local.get $channel))
        (i32.const 80)
        (global.get $SENDER_MAX)
        (i32.const 64)
        (i32.const 8)))
    (if (i32.lt_s (local.get $len) (i32.const 0))
      (then (return (i64.extend_i32_s (local.get $len)))))
    ;; vudo_recv does not say how long the sender's name is: it ends at the first 0.
    ;; SENDER changes only when a message arrived.
    (i32.store (i32.const 0) (call $strlen (i32.const 80) (global.get $SENDER_MAX)))
    (memory.copy (i32.const 4) (i32.const 80) (global.get $SENDER_MAX))
    (i64.load (i32.const 64)))

  ;; last_sender() -> string: the sender of the last message received.
  (func (export "last_sender") (result i32)
    (i32.const 0))

  ;; pending(channel) -> messages waiting for this Spirit on `channel`.
  (func (export "pending") (param $channel i64) (result i64)
    (i64.extend_i32_s (call $pending (i32.wrap_i64 (local.get $channel)))))

  ;; broadcast_number(n) -> how many other members accepted n (channel 0).
  (func (export "broadcast_number") (param $n i64) (result i64)
    (i64.store (i32.const 72) (local.get $n))
    (i64.extend_i32_s (call $broadcast (i32.const 72) (i32.const 8))))

  ;; serve(channel) -> messages answered: replies n + 1 to the sender of every
  ;; number waiting on `channel`, until none is left.
  (func (export "serve") (param $channel i64) (result i64)
    (local $n i64)
    (local $handled i64)
    (block $done
      (loop $next
        (local.set $n (call $recv_number (local.get $channel)))
        (br_if $done (i64.lt_s (local.get $n) (i64.const 0)))
        (drop
          (call $send_number
            (i32.const 0)
            (local.get $channel)
            (i64.add (local.get $n) (i64.const 1))))
        (local.set $handled (i64.add (local.get $handled) (i64.const 1)))
        (br $next)))
    (local.get $handled))
)

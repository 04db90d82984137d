[
  {"op":"state.set","scope":"kv:/demo","key":"hello","value":"world"},
  {"op":"pkt.send","target":"udp://127.0.0.1:9999","payload":"Hello, world!","meta":{"ttl":64}},
  {"op":"log.info","message":"done","fields":{"msg_id":"hello1"}}
]

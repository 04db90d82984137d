[
  {"op":"log.info","message":"lab counter experiment","fields":{"packets":10000}},
  {"op":"fw.counter","name":"rx","port":9999,"side":"b","byte":{"offset":0,"value":72}},
  {"op":"pkt.send","target":"udp://10.77.0.2:9999","payload":"Hello from side a","meta":{"count":10000,"pps":50000}},
  {"op":"barrier.wait","predicate":{"kind":"counter","name":"rx","cmp":">=","value":10000},"timeout_ms":5000},
  {"op":"state.set","scope":"kv:/lab","key":"result","value":"counted"},
  {"op":"log.info","message":"counter reached","fields":{"counter":"rx"}}
]

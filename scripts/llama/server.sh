# Sourced: llama_server_start LOG BINARY ARGS... starts llama-server on a free loopback port with ARGS
# and waits until GET /health answers; sets llama_port and llama_server_pid. Returns 1 (the log's
# tail printed) if the server exits first.
llama_server_pid=""
llama_server_start() {
  local log=$1 bin=$2
  shift 2
  llama_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin" --host 127.0.0.1 --port "$llama_port" "$@" > "$log" 2>&1 &
  llama_server_pid=$!
  for _ in $(seq 1500); do
    curl -sf "http://127.0.0.1:$llama_port/health" > /dev/null 2>&1 && return 0
    kill -0 "$llama_server_pid" 2>/dev/null || break
    sleep 0.2
  done
  tail -30 "$log"
  echo "llama-server did not come up (log: $log)" >&2
  kill "$llama_server_pid" 2>/dev/null
  return 1
}

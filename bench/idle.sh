# Sourced by bench/ scripts. idle COMMAND...: runs COMMAND through bench/on_idle.py until no
# other process used more than 0.2 cores meanwhile (at most 8 tries, 5 s apart), so that no
# rate is taken while another process holds a core; status 3 when the machine never was idle.
idle() {
  local status
  for _ in 1 2 3 4 5 6 7 8; do
    status=0
    "$@" || status=$?
    [[ $status -ne 3 ]] && return $status
    sleep 5
  done
  echo "$(basename "$0"): the machine never stayed idle for: $*" >&2
  return 3
}
on_idle() { idle /usr/bin/python3 bench/on_idle.py -- "$@"; }

"""Runs a command and checks that the machine was otherwise idle meanwhile: with as many
OpenMP threads as cores, one busy core elsewhere makes every parallel region wait for a
preempted thread (libgomp's spinning barriers; measured 5x slower on 2 cores, the same for
rguard and for Python), so a rate measured then compares nothing. Other processes' CPU is
the machine's busy time (Linux /proc/stat) minus the command's own (its rusage). Exits 3,
with a line on stderr, when they used more than --max-other-cores on average; else with the
command's status. Usage: on_idle.py [--max-other-cores C] -- COMMAND..."""
import argparse
import os
import resource
import subprocess
import sys
import time

from cpu_load import busy_cpu_seconds, cpu_seconds


p = argparse.ArgumentParser()
p.add_argument("--max-other-cores", type=float, default=0.2)
p.add_argument("command", nargs=argparse.REMAINDER)
a = p.parse_args()
command = a.command[1:] if a.command[:1] == ["--"] else a.command
busy, own, start = busy_cpu_seconds(), cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
status = subprocess.call(command)
seconds = time.perf_counter() - start
own = cpu_seconds(resource.RUSAGE_CHILDREN) - own
others = max(0.0, busy_cpu_seconds() - busy - own) / seconds
if status == 0 and others > a.max_other_cores:
    print(f"on_idle.py: other processes used {others:.2f} cores while '{command[0]}' ran "
          f"({os.cpu_count()} cores): its rate is not comparable", file=sys.stderr)
    sys.exit(3)
sys.exit(status)

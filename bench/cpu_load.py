"""CPU time spent on this machine, to tell a rate measured on an idle machine from one
measured while other processes took cores (bench/on_idle.py, bench/reference/)."""
import os
import resource


def busy_cpu_seconds():
    """All processes, all CPUs (Linux /proc/stat: user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(who=resource.RUSAGE_SELF):
    """User + system CPU of this process (or of its finished children: RUSAGE_CHILDREN)."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime

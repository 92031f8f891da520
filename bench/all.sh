#!/usr/bin/env bash
# Every benchmark in one run, kcrash next to drgn and crash on the same fixture dumps; output to stdout.
#   bash bench/all.sh > bench/latest.txt
set -u
cd "$(dirname "$0")/.."
for b in bench_open.py bench_memory.py bench_bt.py bench_ps.py bench_log_sys.py bench_sym_rd_dis.py bench_expr.py bench_kmem.py bench_search.py; do
    [ -f "bench/$b" ] || continue
    echo "=== $b ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
    case "$b" in
        bench_memory.py) python3 "bench/$b" --oracles ;;
        *) python3 "bench/$b" ;;
    esac
    echo
done

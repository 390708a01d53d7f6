# Sourced by run.sh and quick.sh: the portal-write runs' slices of the seeded
# (subscription, token) pairs. Each write run takes its own slice; the slice number is
# kept in $WORK/next_write_slice from run to run on the same database (seeding resets
# it), so a reused database starts clean slices. A run ends part-way through a pass,
# leaving some of its slice paused: once the slices come round again, pauses meet 409s
# and the write figures are no longer clean. The data is cut in BENCH_SLICES + 1 parts:
# the last one is never a run's slice but the write ceiling's (bench/pgbench/
# portal_write.sql, lines write_part_from..write_part_to of portal.txt).
BENCH_SLICES=12

write_part() { # -> "from to": the line numbers of the write ceiling's part of portal.txt
  local total per
  total=$(wc -l <"$WORK/data/portal.txt")
  per=$((total / (BENCH_SLICES + 1)))
  echo "$((BENCH_SLICES * per + 1)) $total"
}

next_write_slice() { # -> this run's slice number, and moves the counter on
  local n
  n=$(cat "$WORK/next_write_slice" 2>/dev/null || echo 0)
  echo $((n + 1)) >"$WORK/next_write_slice"
  echo "$n"
}

slice_file() { # slice number -> file holding that slice of portal.txt
  local total n per
  total=$(wc -l <"$WORK/data/portal.txt")
  n=$(($1 % BENCH_SLICES)) per=$((total / (BENCH_SLICES + 1)))
  sed -n "$((n * per + 1)),$(((n + 1) * per))p" "$WORK/data/portal.txt" >"$WORK/data/portal-slice.txt"
  echo "$WORK/data/portal-slice.txt"
}

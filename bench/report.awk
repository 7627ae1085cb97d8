# bench/report.awk - summary table with ratios, from the combined CSV.
#
#   awk -f bench/report.awk -v csv=OUT.csv bench.csv
#
# x_floor  how many times the floor of the same run this row costs:
#          ping-pong: p50 / p50 of floor-spin (spin and adaptive: the
#          adaptive target is "within 2x of the spin floor" when the peer
#          answers inside the spin window) or floor-futex (block, uring)
#          at the same size; stream: memcpy MiB/s
#          at the same size / this row's MiB/s.
# uds_x    speed-up over bench/uds with the io_uring wait (the reference):
#          ping-pong: uds p50 / this p50; stream: this ops/s / uds ops/s.
# Writes the rows plus those two columns to csv, prints the aligned table.

BEGIN { FS = OFS = "," }

NR == 1 {
	hdr = $0
	for (i = 1; i <= NF; i++)
		c[$i] = i
	next
}

{
	n++
	line[n] = $0
	for (k in c)
		v[n, k] = $c[k]
	key = $c["workload"] SUBSEP $c["size"]
	if ($c["transport"] == "floor-spin")
		fspin[$c["size"]] = $c["p50_ns"]
	if ($c["transport"] == "floor-futex")
		ffutex[$c["size"]] = $c["p50_ns"]
	if ($c["transport"] == "memcpy")
		fmem[$c["size"]] = $c["mib_per_s"]
	if ($c["transport"] == "uds" && $c["wait"] == "uring") {
		uds_p50[key] = $c["p50_ns"]
		uds_ops[key] = $c["ops_per_s"]
	}
}

function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2f", a / b) : "" }

function order(t) {
	return index(" floor-spin floor-futex ck_ec memcpy floor-stream ck_ring lfshm-spsc lfshm-mpsc mutex uds ", " " t " ")
}

function worder(w) {
	return index(" spin block adaptive uring none ", " " w " ")
}

function hsize(s) {
	if (s >= 1048576 && s % 1048576 == 0) return (s / 1048576) "M"
	if (s >= 1024 && s % 1024 == 0) return (s / 1024) "K"
	return s
}

function us(ns) { return ns == "" ? "-" : sprintf("%.3f", ns / 1000) }

END {
	print hdr ",x_floor,uds_x" > csv
	sort = "sort -t'|' -k1,1 -k2,2n -k3,3n -k4,4n | cut -d'|' -f5-"
	for (i = 1; i <= n; i++) {
		t = v[i, "transport"]; w = v[i, "workload"]; wt = v[i, "wait"]
		s = v[i, "size"]; key = w SUBSEP s
		if (w == "pingpong") {
			fl = (wt == "spin" || wt == "adaptive") ? fspin[s] : ffutex[s]
			xf = ratio(v[i, "p50_ns"], fl)
			xu = ratio(uds_p50[key], v[i, "p50_ns"])
		} else {
			xf = ratio(fmem[s], v[i, "mib_per_s"])
			xu = t == "memcpy" ? "" : ratio(v[i, "ops_per_s"], uds_ops[key])
		}
		print line[i], xf, xu > csv
		row = sprintf("%-11s %-8s %-8s %6s %9s %9s %9s %9s %11.0f %9.1f %10.1f %7.3f %7s %7s %8.0f %6d/%-6d",
			t, w, wt, hsize(s), us(v[i, "p50_ns"]), us(v[i, "p99_ns"]),
			us(v[i, "p999_ns"]), us(v[i, "max_ns"]), v[i, "ops_per_s"],
			v[i, "mib_per_s"], v[i, "cpu_ns_per_msg"],
			v[i, "syscalls_per_msg"], xf == "" ? "-" : xf,
			xu == "" ? "-" : xu, v[i, "shm_bytes"] / 1024,
			v[i, "rss_client_kib"], v[i, "rss_server_kib"])
		printf "%s|%d|%d|%d|%s\n", w, s, order(t), worder(wt), row | sort
	}
	printf "%-11s %-8s %-8s %6s %9s %9s %9s %9s %11s %9s %10s %7s %7s %7s %8s %13s\n",
		"transport", "workload", "wait", "size", "p50_us", "p99_us",
		"p99.9_us", "max_us", "ops/s", "MiB/s", "cpu_ns/op", "sys/op",
		"x_floor", "uds_x", "shm_KiB", "rss_KiB c/s"
	fflush()
	close(sort)
}

package load

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, which Linux
// fixes at 100 on every architecture Go runs on.
const userHZ = 100

// ProgramCPU returns the CPU time (user + system, in seconds) used so far by the
// running processes whose name (comm) is one of names, summed per name. It reads
// /proc, so it only works on Linux; processes that ended are not counted.
func ProgramCPU(names []string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	if len(stats) == 0 {
		return nil, fmt.Errorf("load: no processes under /proc (CPU accounting needs Linux)")
	}
	out := map[string]float64{}
	for _, n := range names {
		out[n] = 0
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the process ended meanwhile
		}
		name, ticks, ok := parseStat(b)
		if ok && want[name] {
			out[name] += float64(ticks) / userHZ
		}
	}
	return out, nil
}

// programCPU is ProgramCPU, or nothing when no programs are asked for.
func programCPU(names []string) (map[string]float64, error) {
	if len(names) == 0 {
		return nil, nil
	}
	return ProgramCPU(names)
}

// parseStat returns comm and utime+stime from a /proc/<pid>/stat line. comm is in
// parentheses and may itself contain spaces and parentheses, so the fields are
// counted from the last ')'.
func parseStat(b []byte) (comm string, ticks int64, ok bool) {
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return "", 0, false
	}
	fields := bytes.Fields(b[closing+1:])
	// After comm: state(0) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
	// cmajflt utime(11) stime(12).
	if len(fields) < 13 {
		return "", 0, false
	}
	utime, err1 := strconv.ParseInt(string(fields[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	return string(b[open+1 : closing]), utime + stime, true
}

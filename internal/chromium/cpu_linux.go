package chromium

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat, fixed at 100 on
// Linux whatever the kernel's own tick.
const userHZ = 100

// CPU returns the CPU time, user and system, that the browser's processes
// alive now have used: the browser, its renderers (pages and their
// workers), GPU and network processes. Take it before and after a
// transfer to get the browser's share.
func (b *Browser) CPU() (time.Duration, error) {
	pgid := b.cmd.Process.Pid
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, fmt.Errorf("chromium: CPU: %w", err)
	}
	var ticks int64
	found := false
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		// After the command name in parentheses: state, ppid, pgrp, ...
		// utime and stime are the 14th and 15th fields of the line.
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(data[i+1:]))
		if len(fields) < 13 {
			continue
		}
		if pg, err := strconv.Atoi(fields[2]); err != nil || pg != pgid {
			continue
		}
		u, err1 := strconv.ParseInt(fields[11], 10, 64)
		s, err2 := strconv.ParseInt(fields[12], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		ticks += u + s
		found = true
	}
	if !found {
		return 0, fmt.Errorf("chromium: CPU: no process in group %d", pgid)
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

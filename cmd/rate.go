package cmd

import (
	"math"
	"strconv"
	"strings"
)

// parseRate reads an upload limit in bytes per second: a number with an
// optional unit, as users write them for rsync's --bwlimit or curl's
// --limit-rate: K, M, G (or KB, MB, GB) are powers of 1000 bytes, KiB,
// MiB, GiB of 1024, and kbit, Mbit, Gbit are bits; "/s" may follow. A
// bare number is bytes. 0 means no limit.
func parseRate(s string) (float64, error) {
	orig := s
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, usagef("--max-rate %q: give bytes per second, such as 5M, 500K, 2MiB or 40Mbit", orig)
	}
	mult, ok := rateUnits[strings.ToLower(unit)]
	if !ok {
		return 0, usagef("--max-rate %q: unknown unit %q (K, M, G, KiB, MiB, GiB, kbit, Mbit, Gbit)", orig, unit)
	}
	r := v * mult
	if r != 0 && r < minRate {
		return 0, usagef("--max-rate %q: at least %d bytes per second (or 0: no limit)", orig, minRate)
	}
	return r, nil
}

// minRate: below a kilobyte per second a piece would take minutes, which
// looks like a hang.
const minRate = 1000

var rateUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "kib": 1 << 10, "kbit": 1e3 / 8,
	"m": 1e6, "mb": 1e6, "mib": 1 << 20, "mbit": 1e6 / 8,
	"g": 1e9, "gb": 1e9, "gib": 1 << 30, "gbit": 1e9 / 8,
}

package bulk

import "sort"

// span is the half-open interval [lo, hi).
type span struct{ lo, hi uint64 }

// spans is a set of uint64 as ascending, disjoint, non-adjacent spans:
// packet numbers received, stream bytes held or acknowledged. Additions
// nearly always extend the last span, which is the fast path.
type spans []span

// add puts [lo, hi) in the set and reports whether any of it was new.
func (s *spans) add(lo, hi uint64) bool {
	if lo >= hi {
		return false
	}
	r := *s
	if n := len(r); n == 0 || lo > r[n-1].hi {
		*s = append(r, span{lo, hi})
		return true
	} else if lo >= r[n-1].lo {
		if hi <= r[n-1].hi {
			return false
		}
		r[n-1].hi = hi
		return true
	}
	// i: the first span that ends at or after lo; j: the first that
	// starts after hi. Spans i..j-1 touch [lo, hi) and merge with it.
	i := sort.Search(len(r), func(k int) bool { return r[k].hi >= lo })
	j := sort.Search(len(r), func(k int) bool { return r[k].lo > hi })
	if i < j && r[i].lo <= lo && hi <= r[i].hi {
		return false
	}
	if i == j {
		r = append(r, span{})
		copy(r[i+1:], r[i:])
		r[i] = span{lo, hi}
		*s = r
		return true
	}
	m := span{min(lo, r[i].lo), max(hi, r[j-1].hi)}
	r[i] = m
	*s = append(r[:i+1], r[j:]...)
	return true
}

// contains reports whether x is in the set.
func (s spans) contains(x uint64) bool {
	i := sort.Search(len(s), func(k int) bool { return s[k].hi > x })
	return i < len(s) && s[i].lo <= x
}

// trimBelow removes everything below x.
func (s *spans) trimBelow(x uint64) {
	r := *s
	i := 0
	for i < len(r) && r[i].hi <= x {
		i++
	}
	r = r[i:]
	if len(r) > 0 && r[0].lo < x {
		r[0].lo = x
	}
	if i > 0 {
		// Move down rather than reslice forever: the set lives as long
		// as the stream.
		*s = append((*s)[:0], r...)
	} else {
		*s = r
	}
}

// firstGap is the first value at or above from that is not in the set.
func (s spans) firstGap(from uint64) uint64 {
	i := sort.Search(len(s), func(k int) bool { return s[k].hi > from })
	if i < len(s) && s[i].lo <= from {
		return s[i].hi
	}
	return from
}

// nextStart is the start of the first span that starts above x, or
// ^uint64(0).
func (s spans) nextStart(x uint64) uint64 {
	i := sort.Search(len(s), func(k int) bool { return s[k].lo > x })
	if i < len(s) {
		return s[i].lo
	}
	return ^uint64(0)
}

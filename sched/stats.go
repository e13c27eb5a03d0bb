package sched

import (
	"cmp"
	"slices"
)

// Stats is a snapshot of the plan, for progress and debugging.
type Stats struct {
	Pieces          int  // pieces in the layout
	Stripes         int  // stripes in the layout
	StripesComplete int  // stripes with Need verified pieces
	Verified        int  // verified pieces, had before New included
	Outstanding     int  // pieces requested from at least one peer
	Requests        int  // outstanding requests, endgame duplicates included
	Pool            int  // pieces that may be requested and some peer has
	Redundant       int  // arrivals of pieces no longer needed
	Endgame         bool // see Scheduler.Endgame
	Banned          int  // banned ids
	Peers           []PeerStats
}

// PeerStats describes one connected peer.
type PeerStats struct {
	ID          string
	Has         int   // pieces it has
	Outstanding int   // requests outstanding on it
	Bytes       int64 // their total size, against the window
	Received    int   // pieces Received from it
}

// Stats returns a snapshot; Peers are sorted by ID. O(P log P).
func (s *Scheduler) Stats() Stats {
	st := Stats{
		Pieces:          s.n,
		Stripes:         len(s.need),
		StripesComplete: len(s.need) - s.incomplete,
		Verified:        s.verified,
		Outstanding:     len(s.reqs),
		Requests:        s.nrequests,
		Pool:            s.poolAvail,
		Redundant:       s.redundant,
		Endgame:         s.Endgame(),
		Banned:          len(s.banned),
		Peers:           make([]PeerStats, 0, len(s.order)),
	}
	for _, pr := range s.order {
		st.Peers = append(st.Peers, PeerStats{ID: pr.id, Has: pr.nhas, Outstanding: len(pr.out), Bytes: pr.bytes, Received: pr.received})
	}
	slices.SortFunc(st.Peers, func(a, b PeerStats) int { return cmp.Compare(a.ID, b.ID) })
	return st
}

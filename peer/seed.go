package peer

import "time"

// When seeding ends. A receiver that has every file stays in the room as
// a seed (ReceiveOptions.Slots > 0) and serves the pieces to the others
// until the first of:
//
//   - nobody has been served by us for SeedIdle (SeedEndIdle): the
//     receivers still downloading ask for sources every few seconds, so a
//     seed they need is in use long before; a late joiner still finds the
//     sender, or the other seeds;
//   - the room is gone: the sender closed it, or the signalling server
//     went away, as the sender's embedded one does when the sender stops
//     (SeedEndRoomGone); nobody could find us any more;
//   - SeedTime has passed since the files were complete (SeedEndTime);
//   - MaxFailures password handshakes at us failed (SeedEndRefused);
//   - ctx ends (SeedEndInterrupted).
//
// Peers that we serve when the room goes are served to the end; SeedTime
// is a hard bound. A receiver that had every file before it started (all
// of them already in place, say) downloaded nothing and does not seed:
// whoever runs recv for files they have wants to hear so, not to wait.
// Receive reports the reason with an EventSeedEnded before it returns,
// and returns nil: the files are in place.

// SeedEndReason says why seeding ended (EventSeedEnded).
type SeedEndReason int

// Seeding end reasons; see the list above.
const (
	SeedEndInterrupted SeedEndReason = iota
	SeedEndIdle
	SeedEndRoomGone // Event.Err says why: the room closed, or signalling was lost
	SeedEndTime
	SeedEndRefused // Event.Err says why
)

// DefaultSeedIdle is the SeedIdle the command line uses unless told
// otherwise: long enough for every receiver that is downloading now to
// find us, short enough that nobody reaches for Ctrl-C.
const DefaultSeedIdle = time.Minute

// seedPolicy decides when seeding ends for idleness or SeedTime. It holds
// no clock: the loop tells it the time, so tests give it any.
type seedPolicy struct {
	idle, max time.Duration // 0: no bound
	start     time.Time     // seeding began; zero before
	idleSince time.Time     // nobody served since; zero while somebody is
}

// begin starts seeding at now, with nobody served yet.
func (p *seedPolicy) begin(now time.Time) { p.start, p.idleSince = now, now }

// served tells whether somebody is served by us at now.
func (p *seedPolicy) served(now time.Time, busy bool) {
	switch {
	case p.start.IsZero():
	case busy:
		p.idleSince = time.Time{}
	case p.idleSince.IsZero():
		p.idleSince = now
	}
}

// over reports whether seeding is over at now, and why.
func (p *seedPolicy) over(now time.Time) (SeedEndReason, bool) {
	switch {
	case p.start.IsZero():
		return 0, false
	case p.max > 0 && now.Sub(p.start) >= p.max:
		return SeedEndTime, true
	case p.idle > 0 && !p.idleSince.IsZero() && now.Sub(p.idleSince) >= p.idle:
		return SeedEndIdle, true
	}
	return 0, false
}

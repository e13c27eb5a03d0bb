package peer

import (
	"testing"
	"time"
)

// TestSeedPolicy: seeding is over once nobody has been served for the
// idle time (counted from the end of the last session, never during one)
// or once SeedTime has passed since it began, whichever comes first; a
// zero duration is no bound; nothing is over before seeding begins.
func TestSeedPolicy(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at       time.Duration
		busy     bool
		want     SeedEndReason
		wantOver bool
	}
	cases := []struct {
		name      string
		idle, max time.Duration
		steps     []step
	}{
		{"idle from the start", time.Minute, 0, []step{
			{at: 59 * time.Second},
			{at: time.Minute, want: SeedEndIdle, wantOver: true},
		}},
		{"idle counts from the last session", time.Minute, 0, []step{
			{at: 30 * time.Second, busy: true},
			{at: 5 * time.Minute, busy: true}, // a long session: never idle
			{at: 5*time.Minute + time.Second},
			{at: 6 * time.Minute},
			{at: 6*time.Minute + time.Second, want: SeedEndIdle, wantOver: true},
		}},
		{"seed time is a hard bound", time.Minute, 90 * time.Second, []step{
			{at: 10 * time.Second, busy: true},
			{at: 89 * time.Second, busy: true},
			{at: 90 * time.Second, busy: true, want: SeedEndTime, wantOver: true},
		}},
		{"no bounds", 0, 0, []step{
			{at: 24 * time.Hour},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := seedPolicy{idle: tc.idle, max: tc.max}
			if _, over := p.over(at(time.Hour)); over {
				t.Fatal("over before seeding began")
			}
			p.served(at(0), false)
			p.begin(at(0))
			for _, s := range tc.steps {
				p.served(at(s.at), s.busy)
				why, over := p.over(at(s.at))
				if over != s.wantOver || (over && why != s.want) {
					t.Fatalf("at %v (busy %v): over %v (%v), want %v (%v)", s.at, s.busy, over, why, s.wantOver, s.want)
				}
			}
		})
	}
}

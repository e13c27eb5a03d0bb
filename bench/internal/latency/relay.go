//go:build linux

package latency

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The relay is the emulated path: it reads IP packets from one TUN and
// writes them to the other, per direction through a bottleneck of a fixed
// rate with a drop-tail queue, then a fixed one-way delay. Working on IP
// packets means TCP and UDP (so SCTP over DTLS) see exactly the same path.
//
// Per direction one reader goroutine stamps each packet with its due time
// and one writer goroutine hands it to the other TUN when it is due. The
// bottleneck needs no queue of its own: the departure time of the last
// packet says how many bytes are still waiting in it, which is all a
// drop-tail queue needs to know.

const (
	// batchWindow: packets due within this of the first due one leave in
	// the same wake-up of the writer; well below what a congestion
	// controller could notice at tens of milliseconds of RTT.
	batchWindow = 100 * time.Microsecond
	// timerSlack asks the kernel to wake the writer's thread this close to
	// the requested time (the default slack is 50 µs).
	timerSlack = time.Microsecond
	// earlyWake: the writer asks to wake this much before a packet is
	// due, because a wake-up comes late by about as much (tens of µs, up
	// to 150 µs on a virtual machine); with batchWindow the packet then
	// leaves within about ±100 µs of its time instead of always late.
	earlyWake = 50 * time.Microsecond
)

// packet is a pooled buffer; the relay allocates only while the number of
// packets in flight grows.
type packet struct {
	n   int
	due int64 // ns since relay start
	b   [linkMTU + 64]byte
}

// ring is a FIFO of packets that grows by doubling and never shrinks.
// Packets enter in due order (departures are serialized and the delay is
// constant), so the head is always the next one due.
type ring struct {
	buf     []*packet
	head, n int
}

func (r *ring) push(p *packet) {
	if r.n == len(r.buf) {
		nb := make([]*packet, max(64, 2*len(r.buf)))
		for i := 0; i < r.n; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = p
	r.n++
}

func (r *ring) peek() *packet { return r.buf[r.head] }

func (r *ring) pop() *packet {
	p := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return p
}

// Counters are cumulative figures of one direction.
type Counters struct {
	Packets, Bytes int64 // delivered to the far side (IP bytes)
	Drops          int64 // dropped at the bottleneck queue
	DropBytes      int64
	MaxQueue       int64 // most bytes ever waiting in the bottleneck
	WriteErrors    int64
	LateSum        int64 // ns packets were written after their due time, summed
	LateMax        int64 // the most, ns
}

// Sub is c minus an earlier snapshot (MaxQueue is kept as is).
func (c Counters) Sub(o Counters) Counters {
	return Counters{c.Packets - o.Packets, c.Bytes - o.Bytes, c.Drops - o.Drops, c.DropBytes - o.DropBytes, c.MaxQueue, c.WriteErrors - o.WriteErrors, c.LateSum - o.LateSum, c.LateMax}
}

type direction struct {
	in, out int   // TUN fds, non-blocking
	rate    int64 // bit/s
	limit   int64 // queue bytes
	delay   int64 // ns
	base    time.Time
	pool    *sync.Pool
	done    chan struct{}

	lastDep int64 // reader only: when the last accepted packet leaves the bottleneck

	mu   sync.Mutex
	q    ring
	wake chan struct{} // 1-buffered: "the queue was empty and is not"

	packets, bytes, drops, dropBytes, maxQueue, writeErrs, lateSum, lateMax atomic.Int64
}

func (d *direction) now() int64 { return int64(time.Since(d.base)) }

func (d *direction) counters() Counters {
	return Counters{d.packets.Load(), d.bytes.Load(), d.drops.Load(), d.dropBytes.Load(), d.maxQueue.Load(), d.writeErrs.Load(), d.lateSum.Load(), d.lateMax.Load()}
}

// reader reads with plain read(2) on a thread of its own, waiting in
// poll(2) when the TUN is empty: no trip through Go's scheduler per
// packet, and a stop is noticed within pollMillis.
func (d *direction) reader(rt func()) {
	runtime.LockOSThread() // never unlocked: the thread (niced) ends with the goroutine
	rt()
	const pollMillis = 50
	fds := []unix.PollFd{{Fd: int32(d.in), Events: unix.POLLIN}}
	p := d.pool.Get().(*packet)
	for !isDone(d.done) {
		n, err := unix.Read(d.in, p.b[:])
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				_, _ = unix.Poll(fds, pollMillis)
			}
			continue
		}
		now := d.now()
		// Bytes still in the bottleneck (the one being sent included):
		// the time until the last of them is out, at the rate.
		backlog := int64(0)
		if d.lastDep > now {
			backlog = int64(float64(d.lastDep-now) * float64(d.rate) / 8e9)
		}
		if backlog+int64(n) > d.limit {
			d.drops.Add(1)
			d.dropBytes.Add(int64(n))
			continue // p is reused
		}
		if q := backlog + int64(n); q > d.maxQueue.Load() {
			d.maxQueue.Store(q)
		}
		dep := max(now, d.lastDep) + int64(n)*8e9/d.rate
		d.lastDep = dep
		p.n, p.due = n, dep+d.delay
		d.mu.Lock()
		wasEmpty := d.q.n == 0
		d.q.push(p)
		d.mu.Unlock()
		if wasEmpty {
			select {
			case d.wake <- struct{}{}:
			default:
			}
		}
		p = d.pool.Get().(*packet)
	}
	d.pool.Put(p)
}

// writer sleeps with nanosleep on a thread of its own, with a small timer
// slack: that wakes a quarter to half as late as time.Sleep, whose
// lateness also has a long tail, and the writer wakes up to ten thousand
// times a second.
//
// Lateness is recorded per batch (the first packet's, for all of them):
// an upper bound, and 0 for packets written early.
func (d *direction) writer(rt func()) {
	runtime.LockOSThread() // never unlocked: the thread (timer slack, nice) ends with the goroutine
	rt()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(timerSlack.Nanoseconds()), 0, 0, 0)
	batch := make([]*packet, 0, 256)
	for {
		if isDone(d.done) {
			return
		}
		d.mu.Lock()
		if d.q.n == 0 {
			d.mu.Unlock()
			select {
			case <-d.wake:
			case <-d.done:
				return
			}
			continue
		}
		now := d.now()
		if wait := d.q.peek().due - now - int64(earlyWake); wait > 0 {
			d.mu.Unlock()
			// Later arrivals are due later still, so the head decides.
			ts := unix.NsecToTimespec(wait)
			_ = unix.Nanosleep(&ts, nil) // EINTR (Go's preemption signal): just look again
			continue
		}
		for d.q.n > 0 && d.q.peek().due <= now+int64(batchWindow) {
			batch = append(batch, d.q.pop())
		}
		d.mu.Unlock()
		var late int64
		for i, p := range batch {
			if l := now - p.due; l > late {
				late = l
			}
			if _, err := unix.Write(d.out, p.b[:p.n]); err != nil {
				d.writeErrs.Add(1)
			} else {
				d.packets.Add(1)
				d.bytes.Add(int64(p.n))
			}
			d.pool.Put(p)
			batch[i] = nil
		}
		d.lateSum.Add(late * int64(len(batch)))
		if late > d.lateMax.Load() {
			d.lateMax.Store(late)
		}
		batch = batch[:0]
	}
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// relay joins two TUN devices with the emulated path: AB carries what
// side a sends (the payload, here), BA what side b sends.
type relay struct {
	a, b   int // TUN fds, closed by Close
	AB, BA *direction
	// NiceErr is why the relay's threads could not get their priority
	// (nil if they did); without it, a busy CPU delays packets more.
	NiceErr error
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// relayNice is the nice value of the relay's four threads: the emulated
// path should not slow down because the endpoints keep the CPUs busy (a
// real network does not share their CPUs), so the scheduler favours it.
// Not SCHED_FIFO: a realtime thread waiting for one of Go's Ps held by a
// starved normal thread stalled the relay for 100+ ms in a trial.
const relayNice = -10

func newRelay(a, b int, rateBits, queueBytes int64, oneWay time.Duration) *relay {
	pool := &sync.Pool{New: func() any { return new(packet) }}
	r := &relay{a: a, b: b, done: make(chan struct{})}
	base := time.Now()
	mk := func(in, out int) *direction {
		return &direction{in: in, out: out, rate: rateBits, limit: queueBytes, delay: int64(oneWay),
			base: base, pool: pool, done: r.done, wake: make(chan struct{}, 1)}
	}
	r.AB, r.BA = mk(a, b), mk(b, a)
	var niceMu sync.Mutex
	rt := func() {
		// On Linux the nice value is per thread: this one only.
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, relayNice); err != nil {
			niceMu.Lock()
			r.NiceErr = err
			niceMu.Unlock()
		}
	}
	var started sync.WaitGroup
	for _, d := range []*direction{r.AB, r.BA} {
		r.wg.Add(2)
		started.Add(2)
		go func() { defer r.wg.Done(); d.reader(func() { rt(); started.Done() }) }()
		go func() { defer r.wg.Done(); d.writer(func() { rt(); started.Done() }) }()
	}
	started.Wait()
	return r
}

// Close stops the relay and closes both TUN fds, which deletes the
// devices.
func (r *relay) Close() {
	r.once.Do(func() {
		close(r.done)
		r.wg.Wait()
		unix.Close(r.a)
		unix.Close(r.b)
	})
}

package lane

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchConn is the UDP socket under the ICE mux. pion reads and writes one
// datagram per call, and a bulk transfer is ~900,000 datagrams per GiB, so
// system calls are a large share of a transfer's CPU. batchConn reads with
// recvmmsg and hands the datagrams out one by one; writes go to a bounded
// queue that one flusher goroutine drains with sendmmsg, so datagrams
// written while a send is in progress leave together. An idle connection
// still sends each datagram at once: nothing waits for a batch to fill.
//
// On Linux, datagrams of one size to one address that leave together go
// as one with UDP_SEGMENT (GSO): the kernel takes them through its stack
// once and splits them at the end, which costs the sender less CPU
// (docs/performance.md). A kernel or device that refuses it turns it off
// for the socket, and the datagrams go one by one.
type batchConn struct {
	*net.UDPConn
	batch interface {
		ReadBatch([]ipv4.Message, int) (int, error)
		WriteBatch([]ipv4.Message, int) (int, error)
	}

	rmu   sync.Mutex
	rmsgs []ipv4.Message
	rn    int // messages in rmsgs from the last recvmmsg
	rpos  int // the one being handed out
	// readAt is when the last recvmmsg returned: when its datagrams had
	// all arrived, as near as matters, without a clock read for each.
	readAt time.Time
	// With GRO, a message holds datagrams of rseg bytes (the last may be
	// shorter); roff is the next one's offset in it.
	gro        bool
	rseg, roff int

	wmu      sync.Mutex
	wcond    *sync.Cond
	queue    []ipv4.Message
	spare    [][]byte
	lastAP   netip.AddrPort
	lastAddr *net.UDPAddr
	closed   bool
	flushing sync.WaitGroup

	// divert, if set, takes datagrams out of what ReadFrom returns (see
	// rideTable.divert); set before the first read.
	divert func(d []byte, from netip.AddrPort, at time.Time) bool

	// The flusher's own: whether GSO is on, and the scratch it builds
	// coalesced messages in.
	gso  bool
	coal []ipv4.Message
	iov  [][]byte
	oob  []byte
}

const (
	batchSize = 64
	// gsoMaxSegments and gsoMaxBytes bound one coalesced datagram: the
	// kernel's limit on segments was 64 before Linux 5.6, and the whole
	// must fit a UDP datagram's 16-bit length with IPv6's headers.
	gsoMaxSegments = 64
	gsoMaxBytes    = 65535 - 40 - 8
	// maxDatagram fits any packet ICE, DTLS or SCTP sends or accepts.
	maxDatagram = 1 << 13
)

var errConnClosed = net.ErrClosed

// newBatchConn wraps c; with gro it reads coalesced runs of datagrams
// (enableGRO) where the kernel has them.
func newBatchConn(c *net.UDPConn, v6, gro bool) *batchConn {
	b := &batchConn{UDPConn: c, gso: gsoAvailable, gro: gro && enableGRO(c)}
	if v6 {
		b.batch = ipv6.NewPacketConn(c)
	} else {
		b.batch = ipv4.NewPacketConn(c)
	}
	n, size := batchSize, maxDatagram
	if b.gro {
		n, size = groBatch, groBuffer
	}
	b.rmsgs = make([]ipv4.Message, n)
	for i := range b.rmsgs {
		b.rmsgs[i].Buffers = [][]byte{make([]byte, size)}
		if b.gro {
			b.rmsgs[i].OOB = make([]byte, groSpace)
		}
	}
	b.wcond = sync.NewCond(&b.wmu)
	b.flushing.Add(1)
	go b.flusher()
	return b
}

// ReadFromAddrPort returns the next datagram, reading a new batch when the
// last one is used up.
func (b *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	if b.divert != nil {
		return b.readInPlace(p, b.divert)
	}
	b.rmu.Lock()
	defer b.rmu.Unlock()
	d, ap, err := b.nextLocked()
	return copy(p, d), ap, err
}

// readInPlace is ReadFromAddrPort without the copy: f gets the datagram
// in the batch's own buffer, which it may change but not keep, with when
// it was read, and says whether it took it; if not, it is copied to p as
// ReadFromAddrPort would. Bulk streams take theirs this way: they
// decrypt in place.
func (b *batchConn) readInPlace(p []byte, f func(d []byte, from netip.AddrPort, at time.Time) bool) (int, netip.AddrPort, error) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	for {
		d, ap, err := b.nextLocked()
		if err != nil || !f(d, ap, b.readAt) {
			return copy(p, d), ap, err
		}
	}
}

// groBatch and groBuffer shape the reads of a socket with GRO: a
// coalesced message may be a whole UDP datagram's worth, and one cut
// short would lose datagrams.
const (
	groBatch  = batchSize
	groBuffer = 1 << 16
)

func (b *batchConn) nextLocked() ([]byte, netip.AddrPort, error) {
	for {
		for b.rpos >= b.rn {
			n, err := b.batch.ReadBatch(b.rmsgs, 0)
			if err != nil {
				return nil, netip.AddrPort{}, err
			}
			b.readAt = time.Now()
			b.rn, b.rpos, b.roff = n, 0, 0
			b.segLocked()
		}
		m := &b.rmsgs[b.rpos]
		if b.gro && m.Flags&msgTrunc != 0 {
			// Cut short: which datagrams are whole is not known. They
			// count as lost, and the stream sends them again.
			b.skipLocked()
			continue
		}
		var ap netip.AddrPort
		if a, ok := m.Addr.(*net.UDPAddr); ok {
			ap = a.AddrPort()
		}
		d := m.Buffers[0][:m.N]
		if b.rseg > 0 && b.rseg < len(d) {
			d = d[b.roff:min(b.roff+b.rseg, len(d))]
			b.roff += len(d)
			if b.roff < m.N {
				return d, ap, nil
			}
		}
		b.skipLocked()
		return d, ap, nil
	}
}

// skipLocked moves on to the next message of the batch.
func (b *batchConn) skipLocked() {
	b.rpos++
	b.roff = 0
	b.segLocked()
}

// segLocked reads the coalesced datagrams' size of the message at rpos.
func (b *batchConn) segLocked() {
	if b.gro && b.rpos < b.rn {
		m := &b.rmsgs[b.rpos]
		b.rseg = groSize(m.OOB[:m.NN])
	}
}

// ReadFrom is ReadFromAddrPort for net.PacketConn users.
func (b *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, ap, err := b.ReadFromAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// isClosed reports whether Close was called.
func (b *batchConn) isClosed() bool {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	return b.closed
}

// WriteToAddrPort queues one datagram; it blocks only while the queue is
// full, which is what slows a sender down to what the socket takes.
func (b *batchConn) WriteToAddrPort(p []byte, ap netip.AddrPort) (int, error) {
	if len(p) > maxDatagram {
		return 0, errors.New("udp: datagram too large")
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	for len(b.queue) >= batchSize && !b.closed {
		b.wcond.Wait()
	}
	if b.closed {
		return 0, errConnClosed
	}
	var buf []byte
	if n := len(b.spare); n > 0 {
		buf, b.spare = b.spare[n-1][:len(p)], b.spare[:n-1]
	} else {
		buf = make([]byte, len(p), maxDatagram)
	}
	copy(buf, p)
	if ap != b.lastAP || b.lastAddr == nil {
		b.lastAP, b.lastAddr = ap, net.UDPAddrFromAddrPort(ap)
	}
	b.queue = append(b.queue, ipv4.Message{Buffers: [][]byte{buf}, Addr: b.lastAddr})
	b.wcond.Broadcast()
	return len(p), nil
}

// WriteBatchToAddrPort queues datagrams ps to ap under one lock and one
// wake-up of the flusher, so that they leave in as few system calls (and,
// with GSO, trips through the kernel's stack) as the batch allows.
func (b *batchConn) WriteBatchToAddrPort(ps [][]byte, ap netip.AddrPort) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if ap != b.lastAP || b.lastAddr == nil {
		b.lastAP, b.lastAddr = ap, net.UDPAddrFromAddrPort(ap)
	}
	for _, p := range ps {
		if len(p) > maxDatagram {
			return errors.New("udp: datagram too large")
		}
		for len(b.queue) >= batchSize && !b.closed {
			b.wcond.Broadcast() // what is queued may go
			b.wcond.Wait()
		}
		if b.closed {
			return errConnClosed
		}
		var buf []byte
		if n := len(b.spare); n > 0 {
			buf, b.spare = b.spare[n-1][:len(p)], b.spare[:n-1]
		} else {
			buf = make([]byte, len(p), maxDatagram)
		}
		copy(buf, p)
		b.queue = append(b.queue, ipv4.Message{Buffers: [][]byte{buf}, Addr: b.lastAddr})
	}
	b.wcond.Broadcast()
	return nil
}

// WriteTo is WriteToAddrPort for net.PacketConn users.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("udp: not a UDP address")
	}
	return b.WriteToAddrPort(p, ua.AddrPort())
}

// flusher owns every write to the socket.
func (b *batchConn) flusher() {
	defer b.flushing.Done()
	var out []ipv4.Message
	b.wmu.Lock()
	for {
		for len(b.queue) == 0 && !b.closed {
			b.wcond.Wait()
		}
		if len(b.queue) == 0 && b.closed {
			b.wmu.Unlock()
			return
		}
		out, b.queue = b.queue, out[:0]
		b.wcond.Broadcast() // room in the queue again
		b.wmu.Unlock()

		b.send(out)

		b.wmu.Lock()
		for i := range out {
			b.spare = append(b.spare, out[i].Buffers[0])
			out[i] = ipv4.Message{}
		}
	}
}

// send writes out, coalescing runs of datagrams when GSO is on.
func (b *batchConn) send(out []ipv4.Message) {
	msgs := out
	if b.gso {
		msgs = b.coalesce(out)
	}
	for sent := 0; sent < len(msgs); {
		n, err := b.batch.WriteBatch(msgs[sent:], 0)
		if err != nil {
			if len(msgs[sent].Buffers) > 1 && gsoRefused(err) {
				// Send the rest one by one, from the first datagram of the
				// one refused: out holds them in order.
				b.gso = false
				first := 0
				for _, m := range msgs[:sent] {
					first += len(m.Buffers)
				}
				msgs, sent = out[first:], 0
				continue
			}
			// UDP is lossy anyway: drop the datagram that failed (an
			// unreachable address, say) and go on with the rest.
			n = 1
		}
		sent += n
	}
}

// coalesce turns runs of out (same address, same size but for a shorter
// last one) into single messages of several buffers with UDP_SEGMENT set.
// The result shares out's buffers.
func (b *batchConn) coalesce(out []ipv4.Message) []ipv4.Message {
	if len(out) < 2 {
		return out
	}
	msgs, iov, oob := b.coal[:0], b.iov[:0], b.oob[:0]
	if cap(iov) < len(out) { // buffers of earlier messages must not move
		iov = make([][]byte, 0, len(out))
	}
	if cap(oob) < len(out)*gsoSpace {
		oob = make([]byte, 0, len(out)*gsoSpace)
	}
	for i := 0; i < len(out); {
		size := len(out[i].Buffers[0])
		total, j := size, i+1
		for j < len(out) && j-i < gsoMaxSegments && sameAddr(out[j].Addr, out[i].Addr) {
			n := len(out[j].Buffers[0])
			if n > size || n == 0 || total+n > gsoMaxBytes {
				break
			}
			total += n
			j++
			if n < size { // a shorter one ends the run
				break
			}
		}
		if j-i == 1 {
			msgs = append(msgs, out[i])
		} else {
			start := len(iov)
			for k := i; k < j; k++ {
				iov = append(iov, out[k].Buffers[0])
			}
			o := len(oob)
			oob = appendGSO(oob, size)
			msgs = append(msgs, ipv4.Message{Buffers: iov[start:len(iov):len(iov)], OOB: oob[o:len(oob):len(oob)], Addr: out[i].Addr})
		}
		i = j
	}
	b.coal, b.iov, b.oob = msgs, iov, oob
	return msgs
}

func sameAddr(a, b net.Addr) bool {
	if a == b {
		return true
	}
	ua, ok1 := a.(*net.UDPAddr)
	ub, ok2 := b.(*net.UDPAddr)
	return ok1 && ok2 && ua.Port == ub.Port && ua.IP.Equal(ub.IP) && ua.Zone == ub.Zone
}

// Close stops the flusher after it has sent what is queued, then closes
// the socket.
func (b *batchConn) Close() error {
	b.wmu.Lock()
	b.closed = true
	b.wcond.Broadcast()
	b.wmu.Unlock()
	b.flushing.Wait()
	return b.UDPConn.Close()
}

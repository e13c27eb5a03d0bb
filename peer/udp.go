package peer

import (
	"errors"
	"net"
	"net/netip"
	"sync"

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
type batchConn struct {
	*net.UDPConn
	batch interface {
		ReadBatch([]ipv4.Message, int) (int, error)
		WriteBatch([]ipv4.Message, int) (int, error)
	}

	rmu   sync.Mutex
	rmsgs []ipv4.Message
	rn    int // datagrams in rmsgs from the last recvmmsg
	rpos  int // next one to hand out

	wmu      sync.Mutex
	wcond    *sync.Cond
	queue    []ipv4.Message
	spare    [][]byte
	lastAP   netip.AddrPort
	lastAddr *net.UDPAddr
	closed   bool
	flushing sync.WaitGroup
}

const (
	batchSize = 64
	// maxDatagram fits any packet ICE, DTLS or SCTP sends or accepts.
	maxDatagram = 1 << 13
)

var errConnClosed = net.ErrClosed

func newBatchConn(c *net.UDPConn, v6 bool) *batchConn {
	b := &batchConn{UDPConn: c, rmsgs: make([]ipv4.Message, batchSize)}
	if v6 {
		b.batch = ipv6.NewPacketConn(c)
	} else {
		b.batch = ipv4.NewPacketConn(c)
	}
	for i := range b.rmsgs {
		b.rmsgs[i].Buffers = [][]byte{make([]byte, maxDatagram)}
	}
	b.wcond = sync.NewCond(&b.wmu)
	b.flushing.Add(1)
	go b.flusher()
	return b
}

// ReadFromAddrPort returns the next datagram, reading a new batch when the
// last one is used up.
func (b *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	for b.rpos >= b.rn {
		n, err := b.batch.ReadBatch(b.rmsgs, 0)
		if err != nil {
			return 0, netip.AddrPort{}, err
		}
		b.rn, b.rpos = n, 0
	}
	m := &b.rmsgs[b.rpos]
	b.rpos++
	var ap netip.AddrPort
	if a, ok := m.Addr.(*net.UDPAddr); ok {
		ap = a.AddrPort()
	}
	return copy(p, m.Buffers[0][:m.N]), ap, nil
}

// ReadFrom is ReadFromAddrPort for net.PacketConn users.
func (b *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, ap, err := b.ReadFromAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
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

		for sent := 0; sent < len(out); {
			n, err := b.batch.WriteBatch(out[sent:], 0)
			if err != nil {
				// UDP is lossy anyway: drop the datagram that failed (an
				// unreachable address, say) and go on with the rest.
				n = 1
			}
			sent += n
		}

		b.wmu.Lock()
		for i := range out {
			b.spare = append(b.spare, out[i].Buffers[0])
			out[i] = ipv4.Message{}
		}
	}
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

//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pxfer/p2pxfer/internal/chromium"
)

// rawMessage is the size of the bare channel's messages: p2pxfer's data
// frames (lane.MaxMessage).
const rawMessage = 64 << 10

// The sender's flow control, as peer/lane's: wait above rawHigh bytes
// buffered (pion counts those sent and not yet acknowledged), resume at
// rawLow. Flags override them, to try others.
var (
	rawHigh = 4 << 20
	rawLow  = 3 << 20
	// rawPace, if not 0, holds the sender to this many bytes a second, in
	// rawPaceStep writes.
	rawPace float64
	// rawRTOMax, if not 0, caps pion's SCTP retransmission timeout (1 s
	// at least otherwise).
	rawRTOMax time.Duration
	// rawCAStep is pion's congestion window growth per round trip after
	// slow start, in packets: peer/lane's toward a browser
	// (sctpCwndCAStepOne) unless a flag says otherwise; 32 is its step
	// toward CLI peers.
	rawCAStep = 1
)

const rawPaceStep = 16 << 10

type rawResult struct {
	mbs        float64
	chromeCPU  float64 // CPU-seconds of all of Chromium's processes
	goCPU      float64 // of this process (pion's side)
	secsByPage float64
	drops      int64
	stalled    time.Duration // in stretches without progress of 300 ms or more
	longest    time.Duration // the longest of them
}

// rawPage is the bare tab's side: a peer connection whose one ordered
// channel counts what arrives, and notes the time of the first and the
// last byte.
const rawPage = `(async () => {
	const pc = new RTCPeerConnection();
	const dc = pc.createDataChannel("raw", { ordered: true });
	dc.binaryType = "arraybuffer";
	window.raw = { pc, got: 0, first: 0, last: 0 };
	dc.onmessage = (ev) => {
		if (raw.got === 0) raw.first = performance.now();
		raw.got += ev.data.byteLength;
		raw.last = performance.now();
	};
	await pc.setLocalDescription(await pc.createOffer());
	await new Promise((r) => {
		if (pc.iceGatheringState === "complete") r();
		pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r();
	});
	return pc.localDescription.sdp;
})()`

// rawRate measures runs transfers of size bytes over a bare data
// channel from pion into Chromium, and returns the median.
func rawRate(ctx context.Context, work string, size int64, runs int) (rawResult, error) {
	var rs []rawResult
	for i := 0; i < runs; i++ {
		syscall.Sync()
		r, err := rawOnce(ctx, work, size)
		if err != nil {
			return rawResult{}, err
		}
		fmt.Printf("  bare channel    run %d: %6.2f s %7.1f MB/s; CPU-s Chromium %.2f, pion %.2f; UDP drops %d; stalled %.1f s (longest %.1f s)\n",
			i+1, float64(size)/1e6/r.mbs, r.mbs, r.chromeCPU, r.goCPU, r.drops, r.stalled.Seconds(), r.longest.Seconds())
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].mbs < rs[j].mbs })
	return rs[len(rs)/2], nil
}

func rawOnce(ctx context.Context, work string, size int64) (rawResult, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(size>>20)*time.Second)
	defer cancel()
	profile, err := os.MkdirTemp(work, "chromium-")
	if err != nil {
		return rawResult{}, err
	}
	defer os.RemoveAll(profile)
	b, err := chromium.Launch(profile)
	if err != nil {
		return rawResult{}, err
	}
	defer b.Close()
	p, err := b.NewPage(ctx)
	if err != nil {
		return rawResult{}, err
	}
	var offer string
	if err := p.Eval(ctx, rawPage, &offer); err != nil {
		return rawResult{}, err
	}

	// pion as peer/lane sets it up for a browser's peer connection:
	// loopback candidates, an 8 MiB SCTP receive window, its window
	// growth, detached channels.
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetSCTPMaxReceiveBufferSize(8 << 20)
	se.SetSCTPCwndCAStep(uint32(rawCAStep * 1191))
	se.SetSCTPMinCwnd(10 * 1191)
	se.DetachDataChannels()
	if rawRTOMax > 0 {
		se.SetSCTPRTOMax(rawRTOMax)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return rawResult{}, err
	}
	defer pc.Close()
	opened := make(chan *webrtc.DataChannel, 1)
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnOpen(func() { opened <- dc })
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return rawResult{}, err
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return rawResult{}, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return rawResult{}, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return rawResult{}, errors.New("pion gathered no candidates")
	}
	sdp := strings.ReplaceAll(pc.LocalDescription().SDP, "`", "")
	if err := p.Eval(ctx, "raw.pc.setRemoteDescription({type: 'answer', sdp: `"+sdp+"`})", nil); err != nil {
		return rawResult{}, err
	}
	var dc *webrtc.DataChannel
	select {
	case dc = <-opened:
	case <-ctx.Done():
		return rawResult{}, errors.New("the data channel did not open")
	}
	ch, err := dc.Detach()
	if err != nil {
		return rawResult{}, err
	}
	low := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(uint64(rawLow))
	dc.OnBufferedAmountLow(func() {
		select {
		case low <- struct{}{}:
		default:
		}
	})

	cpu0, err := b.CPU()
	if err != nil {
		return rawResult{}, err
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	d0 := udpDrops()
	start := time.Now()
	msg := make([]byte, rawMessage)
	if rawPace > 0 {
		msg = msg[:rawPaceStep]
	}
	for sent := int64(0); sent < size; {
		if rawPace > 0 {
			if ahead := time.Duration(float64(sent)/rawPace*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		n := min(int64(len(msg)), size-sent)
		if _, err := ch.Write(msg[:n]); err != nil {
			return rawResult{}, err
		}
		sent += n
		for dc.BufferedAmount() > uint64(rawHigh) {
			select {
			case <-low:
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return rawResult{}, ctx.Err()
			}
		}
	}
	// Poll what the tab has: the time it went without a byte in
	// stretches of stallMin or longer (a retransmission timeout shows so).
	const stallMin = 300 * time.Millisecond
	var stalled, longest time.Duration
	last, lastAt := int64(-1), time.Now()
	for {
		var got int64
		if err := p.Eval(ctx, "raw.got", &got); err != nil {
			return rawResult{}, err
		}
		now := time.Now()
		if got != last {
			if gap := now.Sub(lastAt); gap >= stallMin && last >= 0 {
				stalled += gap
				longest = max(longest, gap)
			}
			last, lastAt = got, now
		}
		if got >= size {
			break
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return rawResult{}, fmt.Errorf("the tab has %d of %d bytes: %w", got, size, ctx.Err())
		}
	}
	secs := time.Since(start).Seconds()
	cpu1, _ := b.CPU()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	rus := func(u syscall.Rusage) float64 { return time.Duration(u.Utime.Nano() + u.Stime.Nano()).Seconds() }
	var marks struct{ First, Last float64 }
	_ = p.Eval(ctx, `({first: raw.first, last: raw.last})`, &marks)
	return rawResult{
		mbs: float64(size) / 1e6 / secs, chromeCPU: (cpu1 - cpu0).Seconds(), goCPU: rus(ru1) - rus(ru0),
		secsByPage: (marks.Last - marks.First) / 1000, drops: udpDrops() - d0, stalled: stalled, longest: longest,
	}, nil
}

// hashRate times the page's SHA-256 (noble's, as chain.js uses it)
// over 64 MiB in this Chromium, on the page's main thread: the room's
// page at link (without the password it waits for one) loads the module
// from p2pxfer's own assets.
func hashRate(ctx context.Context, work, link string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	profile, err := os.MkdirTemp(work, "chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	b, err := chromium.Launch(profile)
	if err != nil {
		return err
	}
	defer b.Close()
	p, err := b.NewPage(ctx)
	if err != nil {
		return err
	}
	if err := p.Navigate(ctx, link); err != nil {
		return err
	}
	var ms []float64
	if err := p.Eval(ctx, `(async () => {
		const base = [...document.scripts].find((s) => s.src.endsWith("/app.js")).src.replace(/app\.js$/, "");
		const { sha256 } = await import(base + "vendor/noble.js");
		const buf = new Uint8Array(64 << 20).fill(7);
		sha256(buf.subarray(0, 4 << 20));
		const out = [];
		for (let i = 0; i < 3; i++) {
			const t0 = performance.now();
			sha256(buf);
			out.push(performance.now() - t0);
		}
		return out;
	})()`, &ms); err != nil {
		return err
	}
	sort.Float64s(ms)
	fmt.Printf("noble SHA-256 in this Chromium (main thread, 64 MiB, median of 3): %.1f MB/s (%.0f MiB/s)\n",
		64*(1<<20)/1e6/(ms[1]/1000), 64/(ms[1]/1000))
	return nil
}

// c2cPage sends SIZE bytes between two peer connections in one tab, over
// one ordered channel in 64 KiB messages, with the same flow control as
// the pion sender, and resolves with the seconds it took.
const c2cPage = `(async (size, high, low) => {
	const a = new RTCPeerConnection(), b = new RTCPeerConnection();
	a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
	b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
	const tx = a.createDataChannel("raw", { ordered: true });
	tx.bufferedAmountLowThreshold = low;
	let got = 0, t0 = 0;
	const done = new Promise((resolve) => {
		b.ondatachannel = (e) => {
			e.channel.binaryType = "arraybuffer";
			e.channel.onmessage = (m) => {
				got += m.data.byteLength;
				if (got >= size) resolve((performance.now() - t0) / 1000);
			};
		};
	});
	await a.setLocalDescription(await a.createOffer());
	await b.setRemoteDescription(a.localDescription);
	await b.setLocalDescription(await b.createAnswer());
	await a.setRemoteDescription(b.localDescription);
	await new Promise((r) => (tx.readyState === "open" ? r() : (tx.onopen = r)));
	const msg = new Uint8Array(64 << 10);
	t0 = performance.now();
	for (let sent = 0; sent < size; ) {
		const n = Math.min(msg.length, size - sent);
		tx.send(n === msg.length ? msg : msg.subarray(0, n));
		sent += n;
		if (tx.bufferedAmount > high) await new Promise((r) => (tx.onbufferedamountlow = r));
	}
	const secs = await done;
	a.close();
	b.close();
	return secs;
})`

// c2cRate times size bytes between two peer connections in one
// Chromium tab: Chromium's data channel at both ends.
func c2cRate(ctx context.Context, work string, size int64) (mbs, cpu float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(size>>20)*time.Second)
	defer cancel()
	profile, err := os.MkdirTemp(work, "chromium-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(profile)
	b, err := chromium.Launch(profile)
	if err != nil {
		return 0, 0, err
	}
	defer b.Close()
	p, err := b.NewPage(ctx)
	if err != nil {
		return 0, 0, err
	}
	cpu0, err := b.CPU()
	if err != nil {
		return 0, 0, err
	}
	var secs float64
	if err := p.Eval(ctx, fmt.Sprintf("%s(%d, %d, %d)", c2cPage, size, rawHigh, rawLow), &secs); err != nil {
		return 0, 0, err
	}
	cpu1, _ := b.CPU()
	return float64(size) / 1e6 / secs, (cpu1 - cpu0).Seconds(), nil
}

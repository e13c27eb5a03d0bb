package cmd

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{
		"0": 0, "1500": 1500, "5M": 5e6, "5MB": 5e6, "5mb/s": 5e6, "2MiB": 2 << 20, "500K": 5e5,
		"1.5G": 1.5e9, "40Mbit": 5e6, "8kbit": 1000, " 3 KiB ": 3072,
	} {
		got, err := parseRate(in)
		if err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1M", "5Q", "M", "1e400", "999", "NaN"} {
		if got, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) = %v, want an error", in, got)
		}
	}
}

// TestMaxRate: send --max-rate holds the upload to the rate asked for:
// the transfer takes at least as long as the rate allows (a bound a
// slow machine cannot break), and arrives whole.
func TestMaxRate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const size, rate = 3 << 20, 1 << 20
	src := t.TempDir()
	want := randomFile(t, src, "f.bin", size)
	snd := start(ctx, nil, "send", "--listen", "127.0.0.1:0", "--max-receivers", "1", "--max-rate", "1MiB", filepath.Join(src, "f.bin"))
	roomID, password, url := snd.offer(t)
	out := t.TempDir()
	begin := time.Now()
	rcv := start(ctx, map[string]string{"P2PXFER_PASSWORD": password}, "recv", "--no-seed", "--signal", url, "--out", out, roomID)
	if c := rcv.wait(t); c != ExitOK {
		t.Fatalf("recv exit %d:\n%s", c, rcv.stderr.String())
	}
	took := time.Since(begin)
	if c := snd.wait(t); c != ExitOK {
		t.Fatalf("send exit %d:\n%s", c, snd.stderr.String())
	}
	// The limiter lets a tenth of a second's worth (or a frame) go at
	// once; the rest waits for its tokens.
	least := time.Duration(size-rate/10-64<<10) * time.Second / rate
	if took < least {
		t.Fatalf("%d bytes at 1 MiB/s in %v, less than %v", size, took, least)
	}
	if got := fileSHA256(t, filepath.Join(out, "f.bin")); got != sha256.Sum256(want) {
		t.Fatal("the file differs")
	}
}

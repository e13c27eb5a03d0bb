package chunker

import (
	"bytes"
	"testing"
)

func TestBitmap(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 64, 1000} {
		b := NewBitmap(n)
		if b.Len() != n || b.Count() != 0 || len(b.Bytes()) != (n+7)/8 {
			t.Fatalf("n=%d: fresh bitmap wrong", n)
		}
		b.Set(-1)
		b.Set(n)
		if b.Count() != 0 || b.Has(-1) || b.Has(n) {
			t.Fatalf("n=%d: out-of-range index changed bitmap", n)
		}
		want := 0
		for i := 0; i < n; i += 3 {
			b.Set(i)
			b.Set(i) // idempotent
			want++
		}
		if b.Count() != want {
			t.Fatalf("n=%d: Count=%d want %d", n, b.Count(), want)
		}
		c := NewBitmap(n)
		if err := c.FromBytes(b.Bytes()); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if c.Has(i) != (i%3 == 0) {
				t.Fatalf("n=%d: bit %d wrong after FromBytes", n, i)
			}
		}
		if c.Count() != want || !bytes.Equal(c.Bytes(), b.Bytes()) {
			t.Fatalf("n=%d: round trip differs", n)
		}
		if n > 0 {
			c.Clear(0)
			c.Clear(0)
			if c.Has(0) || c.Count() != want-1 {
				t.Fatalf("n=%d: Clear", n)
			}
			if !b.Has(0) {
				t.Fatal("bitmaps share storage")
			}
		}
	}
	// Bit order is part of the wire format.
	b := NewBitmap(10)
	b.Set(0)
	b.Set(9)
	if got := b.Bytes(); !bytes.Equal(got, []byte{0x01, 0x02}) {
		t.Fatalf("wire form %x", got)
	}
}

func TestBitmapFromBytesRefuses(t *testing.T) {
	b := NewBitmap(10)
	b.Set(3)
	for _, p := range [][]byte{nil, {0}, {0, 0, 0}, {0, 0x04}, {0, 0x80}} {
		if err := b.FromBytes(p); err == nil {
			t.Errorf("FromBytes(%x) accepted", p)
		}
	}
	if !b.Has(3) || b.Count() != 1 {
		t.Error("refused FromBytes modified bitmap")
	}
}

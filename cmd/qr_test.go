package cmd

import (
	"regexp"
	"strings"
	"testing"
)

// decodeQR reads back the QR code printQR drew in out, independently of
// the encoder: it checks the quiet zone, reads the format information,
// unmasks the data modules in their zigzag order, de-interleaves the
// blocks and decodes the byte-mode segment. It handles what links need:
// versions 1 to 6, levels L and M, byte mode.
func decodeQR(t *testing.T, out string) string {
	t.Helper()
	var rows [][]bool
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, qrColours) {
			continue
		}
		if !strings.HasSuffix(line, qrReset) {
			t.Fatalf("a QR line does not reset the colours: %q", line)
		}
		cells := []rune(sgrRE.ReplaceAllString(strings.TrimPrefix(line, "  "), ""))
		top, bottom := make([]bool, len(cells)), make([]bool, len(cells))
		for i, c := range cells {
			switch c {
			case '█':
				top[i], bottom[i] = true, true
			case '▀':
				top[i] = true
			case '▄':
				bottom[i] = true
			case ' ':
			default:
				t.Fatalf("unexpected %q in the QR code", c)
			}
		}
		rows = append(rows, top, bottom)
	}
	if len(rows) == 0 {
		t.Fatalf("no QR code in:\n%s", out)
	}
	n := len(rows[0])
	size := n - 2*qrQuiet
	if len(rows) != n && len(rows) != n+1 || size < 21 || (size-17)%4 != 0 {
		t.Fatalf("QR code of %dx%d modules (quiet zone included)", n, len(rows))
	}
	for y, row := range rows {
		if len(row) != n {
			t.Fatalf("QR row %d has %d modules, want %d", y, len(row), n)
		}
		for x, b := range row {
			inside := x >= qrQuiet && y >= qrQuiet && x < n-qrQuiet && y < n-qrQuiet
			if b && !inside {
				t.Fatalf("module (%d,%d) in the quiet zone is dark", x, y)
			}
		}
	}
	dark := func(x, y int) bool { return rows[y+qrQuiet][x+qrQuiet] }
	version := (size - 17) / 4
	if version > 6 {
		t.Fatalf("version %d: the test decodes 1 to 6", version)
	}

	// Format information, next to the top-left finder (as zxing reads it).
	format := 0
	bit := func(x, y int) {
		format <<= 1
		if dark(x, y) {
			format |= 1
		}
	}
	for x := 0; x < 6; x++ {
		bit(x, 8)
	}
	bit(7, 8)
	bit(8, 8)
	bit(8, 7)
	for y := 5; y >= 0; y-- {
		bit(8, y)
	}
	level, mask := -1, -1
	for ec := 0; ec < 4; ec++ {
		for m := 0; m < 8; m++ {
			if qrFormatBits(ec, m) == format {
				level, mask = ec, m
			}
		}
	}
	if level < 0 {
		t.Fatalf("format information %015b is not a valid one", format)
	}

	// Modules that are not data: finders with separators and format
	// information, timing, the alignment pattern of versions 2 to 6.
	function := func(x, y int) bool {
		switch {
		case x < 9 && y < 9, x >= size-8 && y < 9, x < 9 && y >= size-8, x == 6, y == 6:
			return true
		case version >= 2:
			p := size - 7
			return x >= p-2 && x <= p+2 && y >= p-2 && y <= p+2
		}
		return false
	}
	masked := func(x, y int) bool {
		i, j := y, x
		switch mask {
		case 0:
			return (i+j)%2 == 0
		case 1:
			return i%2 == 0
		case 2:
			return j%3 == 0
		case 3:
			return (i+j)%3 == 0
		case 4:
			return (i/2+j/3)%2 == 0
		case 5:
			return (i*j)%2+(i*j)%3 == 0
		case 6:
			return ((i*j)%2+(i*j)%3)%2 == 0
		}
		return ((i+j)%2+(i*j)%3)%2 == 0
	}
	var bits []bool
	up := true
	for right := size - 1; right > 0; right -= 2 {
		if right == 6 {
			right--
		}
		for v := 0; v < size; v++ {
			y := v
			if up {
				y = size - 1 - v
			}
			for c := 0; c < 2; c++ {
				if x := right - c; !function(x, y) {
					bits = append(bits, dark(x, y) != masked(x, y))
				}
			}
		}
		up = !up
	}
	codewords := make([]byte, len(bits)/8)
	for i := range codewords {
		for b := 0; b < 8; b++ {
			if bits[8*i+b] {
				codewords[i] |= 0x80 >> b
			}
		}
	}

	// Blocks of data codewords (equal-sized for these versions), interleaved.
	blocks := map[[2]int][2]int{ // {level, version}: {blocks, data codewords each}; level L=1, M=0
		{1, 1}: {1, 19}, {1, 2}: {1, 34}, {1, 3}: {1, 55}, {1, 4}: {1, 80}, {1, 5}: {1, 108}, {1, 6}: {2, 68},
		{0, 1}: {1, 16}, {0, 2}: {1, 28}, {0, 3}: {1, 44}, {0, 4}: {2, 32}, {0, 5}: {2, 43}, {0, 6}: {4, 27},
	}
	nb, per := blocks[[2]int{level, version}][0], blocks[[2]int{level, version}][1]
	if nb == 0 {
		t.Fatalf("level %d: the test decodes L and M", level)
	}
	data := make([]byte, 0, nb*per)
	for b := 0; b < nb; b++ {
		for i := 0; i < per; i++ {
			data = append(data, codewords[i*nb+b])
		}
	}

	// One byte-mode segment: mode 0100, an 8-bit count (versions 1-9).
	if data[0]>>4 != 0b0100 {
		t.Fatalf("mode %04b, want byte mode", data[0]>>4)
	}
	count := int(data[0]&0x0f)<<4 | int(data[1]>>4)
	if 2+count > len(data) {
		t.Fatalf("byte count %d over the %d data codewords", count, len(data))
	}
	text := make([]byte, count)
	for i := range text {
		text[i] = data[1+i]<<4 | data[2+i]>>4
	}
	return string(text)
}

var sgrRE = regexp.MustCompile("\x1b\\[[0-9;]*m")

// qrFormatBits is the 15-bit format information of error correction
// level ec (the standard's two bits) and mask m: BCH(15,5), then masked.
func qrFormatBits(ec, m int) int {
	data := ec<<3 | m
	rem := data << 10
	for i := 14; i >= 10; i-- {
		if rem>>i&1 == 1 {
			rem ^= 0x537 << (i - 10)
		}
	}
	return (data<<10 | rem) ^ 0x5412
}

// TestQR: codes of several lengths read back as what was drawn.
func TestQR(t *testing.T) {
	for _, s := range []string{
		"http://192.168.1.20:40123/r/abcd2345#k7m2x-pq9fd",
		"https://p2pxfer.example.com/r/abcd2345#k7m2x-pq9fd",
		"http://[2001:db8:1234:5678::1]:40123/r/abcd2345#k7m2x-pq9fd",
		"http://10.0.0.1:1/r/abcd2345",
	} {
		var b strings.Builder
		if err := printQR(&b, s); err != nil {
			t.Fatal(err)
		}
		if got := decodeQR(t, b.String()); got != s {
			t.Errorf("QR of %q reads %q", s, got)
		}
	}
}
